"""The blocking filesystem steps of a restore: restic include patterns, the part of a listing under a
path, a restored copy checked against the snapshot, staging directories, the swap into place (undone
when a step fails), where copies go with --to, and which targets are refused."""
from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from spbot.context import UserError
from spbot.system.restic import Listing, Snapshot, verify_restored

from .settings import ServiceSettings


def restic_pattern(path: str) -> str:
    """restic's --include takes patterns: escape the pattern characters a file name may hold."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", path)


def sub_listing(listing: Listing, path: str) -> Listing:
    """The part of a snapshot listing at or under `path` (not its parent directories)."""
    prefix = path.rstrip("/") + "/"
    part = Listing(snapshot=listing.snapshot)
    for node in listing.nodes:
        if node.path == path or node.path.startswith(prefix):
            part.add(node)
    return part


def check_restored(part: Listing, target: Path, live: str) -> tuple[int, int]:
    """Blocking: the restored copy of `live` under `target` against the listing: every entry present,
    file sizes equal, and no more files than the snapshot holds. Returns (files, bytes)."""
    check = verify_restored(part, target)
    copy = Path(target) / live.lstrip("/")
    found = _count_files(copy)
    if not check.ok or found != part.files:
        problems = [f"missing: {', '.join(check.missing[:3])}"] if check.missing else []
        problems += [f"wrong size: {', '.join(check.wrong_size[:3])}"] if check.wrong_size else []
        problems += [f"{found} files restored, the snapshot lists {part.files}"] if found != part.files else []
        raise UserError(f"the restored copy of {live} does not match the snapshot ({'; '.join(problems)}); "
                        "nothing live was changed", "run restic check on the repository; try an older snapshot")
    return part.files, part.total_size


def _count_files(root: Path) -> int:
    if root.is_symlink() or root.is_file():
        return 1 if root.is_file() and not root.is_symlink() else 0
    count = 0
    for dirpath, _, filenames in os.walk(root):
        count += sum(1 for f in filenames if os.path.isfile(os.path.join(dirpath, f))
                     and not os.path.islink(os.path.join(dirpath, f)))
    return count


def staging_dir(live: Path, snapshot: Snapshot) -> Path:
    """Next to the live data, so moving it into place is a rename on the same filesystem."""
    if live == live.parent:
        raise UserError("restoring / into place is not supported", "use --to <path>")
    return live.parent / f".spbot-restore-{snapshot.short_id}-{live.name}"


def aside_of(live: Path, stage: Path) -> Path:
    """Where a restore moves the live data while the restored copy takes its place."""
    return live.parent / f".spbot-replaced-{stage.name.removeprefix('.spbot-restore-')}"


def swap_into_place(staged: list[tuple[Path, Path]]) -> list[Path]:
    """Blocking: rename each live path aside and the restored copy in; returns where the old data is now
    (for remove_all once the swap is recorded as done). If a step fails, what was already swapped is
    put back."""
    done: list[tuple[Path, Path | None]] = []
    try:
        for live, stage in staged:
            restored = stage / str(live).lstrip("/")
            aside = aside_of(live, stage)
            had_live = os.path.lexists(live)
            if had_live:
                os.rename(live, aside)
            done.append((live, aside if had_live else None))
            os.rename(restored, live)
    except OSError as exc:
        for live, aside in reversed(done):
            if aside is not None:
                if os.path.lexists(live):
                    _remove(live)
                os.rename(aside, live)
        raise UserError(f"moving the restored data into place failed ({exc.strerror}); the live data was put back",
                        "check the free space and permissions next to the live data") from None
    return [aside for _, aside in done if aside is not None]


def put_back(staged: list[tuple[Path, Path]]) -> list[str]:
    """Blocking: undo a swap that a stop of the bot cut short: wherever the old data is aside, it goes
    back (a restored copy already in its place is removed: the snapshot still has it). Returns the live
    paths put back."""
    back = []
    for live, stage in staged:
        aside = aside_of(live, stage)
        if not os.path.lexists(aside):
            continue
        if os.path.lexists(live):
            _remove(live)
        os.rename(aside, live)
        back.append(str(live))
    return back


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_all(paths: Sequence[Path]) -> None:
    for path in paths:
        if os.path.lexists(path):
            _remove(Path(path))


def copy_places(paths: Sequence[str], root: Path) -> dict[str, Path]:
    """Where each snapshot path goes under `root`: its path below the common parent of all of them."""
    parent = Path(os.path.commonpath([str(Path(p).parent) for p in paths])) if paths else Path("/")
    return {p: root / Path(p).relative_to(parent) for p in paths}


def move_into(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(source):
        os.replace(source, destination)


def check_target(target: Path, snapshot: Snapshot, services: Iterable[ServiceSettings]) -> None:
    if not target.is_absolute():
        raise UserError(f"--to needs an absolute path, not {target}", "e.g. --to /root/restored")
    live = {Path(p) for p in snapshot.paths} | {p for s in services for p in s.paths}
    for path in live:
        if target == path or path in target.parents or target in path.parents:
            raise UserError(f"{target} overlaps the live data at {path}", "choose a directory outside it")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"{target} exists and is not an empty directory", "choose a new or empty directory")
