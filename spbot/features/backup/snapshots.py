"""Reading the repository: the snapshots (of one service), one snapshot found by id prefix or `latest`,
their sizes (from the run log, the rest asked from restic once each, in the background), and the
repository's stats with B2 usage. A local repository's listing is kept while its snapshots/ folder
holds the same files (restic names each snapshot file by its id and never rewrites one), so a listing
asks restic again only after the repository changed."""
from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from spbot.context import UserError
from spbot.providers.b2 import B2Error
from spbot.system.restic import LocalRepository, Restic, ResticError, Snapshot

from .model import StatsReport, restic_user_error, service_of
from .repository import safe_location
from .settings import B2RepositorySettings

if TYPE_CHECKING:
    from .service import Backups


async def of_service(backups: "Backups", service: str | None = None, restic: Restic | None = None) -> list[Snapshot]:
    restic = restic or backups.restic()
    tags = (f"service:{service}",) if service else ()
    key, state = (restic.repository.location(), tags), repository_state(restic)
    cached = _listed.get(key)
    if state is not None and cached is not None and cached[0] == state:
        return list(cached[1])
    try:
        found = await restic.snapshots(tags=tags)
    except ResticError as exc:
        raise restic_user_error(exc, backups) from None
    if state is not None and repository_state(restic) == state:       # nothing changed while restic read
        _listed[key] = (state, tuple(found))
    return found


def repository_state(restic: Restic) -> frozenset[str] | None:
    """The snapshot files of a local repository (their names are the snapshot ids); None when it cannot
    be told without restic (a remote repository, or the folder cannot be read)."""
    if not isinstance(restic.repository, LocalRepository):
        return None
    try:
        return frozenset(os.listdir(restic.repository.path / "snapshots"))
    except OSError:
        return None


# (repository location, tags) -> (its snapshot files, the snapshots restic listed for them)
_listed: dict[tuple[str, tuple[str, ...]], tuple[frozenset[str], tuple[Snapshot, ...]]] = {}


async def find(backups: "Backups", ref: str, service: str | None, restic: Restic) -> tuple[Snapshot, str]:
    """A snapshot by id prefix (or `latest` of a service) and the service it belongs to."""
    ref = ref.strip().lower()
    if ref == "latest" and not service:
        raise UserError("`latest` needs a service name", "e.g. !backup restore latest nextcloud (or --to DIR for every service)")
    if ref != "latest" and not re.fullmatch(r"[0-9a-f]{4,64}", ref):
        raise UserError(f"{ref!r} is not a snapshot id", "copy one from !backup list")
    found = await of_service(backups, service if ref == "latest" else None, restic)
    matches = found[-1:] if ref == "latest" else [s for s in found if s.id.startswith(ref)]
    if not matches:
        where = f" of {service}" if service else ""
        raise UserError(f"no snapshot{where} matches {ref}", "see !backup list for the snapshots")
    if len(matches) > 1:
        raise UserError(f"{ref} matches {len(matches)} snapshots", "give more characters of the id")
    snapshot = matches[0]
    owner = service_of(snapshot)
    if owner is None:
        raise UserError(f"snapshot {snapshot.short_id} has no service:<name> tag; spbot did not make it",
                        "restore it by hand with restic")
    if service and owner != service:
        raise UserError(f"snapshot {snapshot.short_id} belongs to {owner}, not {service}",
                        f"use !backup restore {snapshot.short_id} {owner}")
    return snapshot, owner


async def sizes(backups: "Backups", snapshots: Sequence[Snapshot], restic: Restic, limit: int = 10) -> dict[str, int]:
    """The sizes known now: from the run log and earlier answers. A snapshot's size never changes, so
    restic is asked once per snapshot, for the newest `limit` unknown ones, in the background at the
    backup's low priority: a listing never waits for it (those show "?" until known)."""
    known = await backups.log.sizes()
    missing = [s for s in snapshots if s.short_id not in known][-limit:]
    location = restic.repository.location()
    if missing and location not in _sizing:
        task = asyncio.create_task(_ask_sizes(backups, missing, restic), name=f"snapshot sizes {location}")
        _sizing[location] = task
        task.add_done_callback(lambda _: _sizing.pop(location, None))
    return known


# repository location -> the task asking restic for sizes (one at a time per repository)
_sizing: dict[str, asyncio.Task] = {}


async def _ask_sizes(backups: "Backups", missing: Sequence[Snapshot], restic: Restic) -> None:
    for snapshot in reversed(missing):            # the newest first: what a listing shows on top
        try:
            stats = await restic.stats("restore-size", snapshot_ids=[snapshot.id], timeout=300)
        except ResticError:
            continue
        await backups.log.remember_size(snapshot.short_id, stats.total_size)


async def stats(backups: "Backups") -> StatsReport:
    restic = backups.restic()
    try:
        snapshots = await restic.snapshots()
        dedup = await restic.dedup_report()
    except ResticError as exc:
        raise restic_user_error(exc, backups) from None
    settings = backups.settings
    last = {name: await backups.log.last_success(name) for name in sorted(backups.services)}
    report = StatsReport(location=safe_location(restic), snapshots=len(snapshots),
                         stored_size=dedup.stored_size, restore_size=dedup.restore_size,
                         dedup_ratio=dedup.ratio, last=last, warning=backups.same_disk_warning())
    if isinstance(settings.repository, B2RepositorySettings):
        report.keep_deleted_days = settings.b2.keep_deleted_days
        try:
            key = backups.b2_key()
            report.b2_usage = await backups.b2_provider(key["key_id"], key["key"]).usage(settings.repository.bucket)
        except (B2Error, UserError) as exc:
            report.b2_error = getattr(exc, "what", str(exc))
    return report
