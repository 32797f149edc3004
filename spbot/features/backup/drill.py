"""The restore drill: a sample of files from each service's latest snapshot restored and compared with
the live files that have not changed since (same size and modification time)."""
from __future__ import annotations

import asyncio
import filecmp
import os
import random
import stat
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from spbot.system.restic import Node, Restic, ResticError

from .model import DrillResult
from .restore_files import restic_pattern

if TYPE_CHECKING:
    from .service import Backups


async def run(backups: "Backups", names: Sequence[str] = ()) -> list[DrillResult]:
    """Restore a sample of files from each service's latest snapshot and compare them with the live
    files that have not changed since (same size and modification time)."""
    services = backups.select(names)
    restic = backups.restic()
    return [await _drill_one(backups, restic, name) for name, _ in services]


async def _drill_one(backups: "Backups", restic: Restic, name: str) -> DrillResult:
    result = DrillResult(name)
    try:
        found = await restic.snapshots(tags=[f"service:{name}"])
        if not found:
            result.error = "no snapshot yet"
            return result
        result.snapshot = found[-1]
        listing = await restic.ls(result.snapshot.id)
        files = [n for n in listing.nodes if n.type == "file"]
        result.files = len(files)
        candidates = await asyncio.to_thread(lambda: [n for n in files if unchanged_since_snapshot(n)])
        result.comparable = len(candidates)
        sample = _sample(candidates, backups.settings.drill_files, backups.settings.drill_max_bytes)
        if not sample:
            return result
        work = backups.state_dir / "backup-work"
        work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="drill-", dir=work) as tmp:
            await restic.restore(result.snapshot.id, tmp, include=[restic_pattern(n.path) for n in sample],
                                 timeout=backups.settings.timeout)
            result.mismatches = await asyncio.to_thread(_compare, sample, Path(tmp))
        result.checked = len(sample)
    except ResticError as exc:
        result.error = str(exc)
    return result


def unchanged_since_snapshot(node: Node) -> bool:
    """The live file has the snapshot's size and modification time (restic keeps microseconds here)."""
    try:
        st = os.lstat(node.path)
    except OSError:
        return False
    if not _is_regular(st.st_mode) or st.st_size != node.size or node.mtime is None:
        return False
    snap_us = (node.mtime - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
    return abs(st.st_mtime_ns // 1000 - snap_us) <= 1


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def _sample(nodes: list[Node], count: int, max_bytes: int) -> list[Node]:
    chosen, total = [], 0
    for node in random.sample(nodes, len(nodes)):
        if len(chosen) >= count:
            break
        if total + node.size <= max_bytes:
            chosen.append(node)
            total += node.size
    return chosen


def _compare(sample: list[Node], restored_root: Path) -> list[str]:
    """Blocking: paths whose restored content differs from the live file."""
    return [n.path for n in sample
            if not filecmp.cmp(restored_root / n.path.lstrip("/"), n.path, shallow=False)]
