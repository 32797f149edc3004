"""Restores: into place (restored beside the live data, verified, a pre-restore snapshot of the current
data, the service's units stopped, swapped in, units started) or copied out --to a new directory, one
service or every service's latest. Nothing live changes before the restored copy is verified."""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from spbot.context import UserError
from spbot.system.proc import ProcError, run
from spbot.system.restic import Listing, Restic, ResticError, Snapshot

from . import databases
from .model import Progress, RestoredPath, Stopper, RestoreReport, advice, restic_user_error
from .restore_files import (check_restored, check_target, copy_places, move_into, remove_all, restic_pattern,
                            staging_dir, sub_listing, swap_into_place)
from .settings import ServiceSettings

if TYPE_CHECKING:
    from .service import Backups


async def into_place(backups: "Backups", ref: str, service: str | None,
                     progress: Progress | None = None) -> RestoreReport:
    """Restore to a temporary directory next to the live data, verify, snapshot the current data
    (reason pre-restore), stop the service's units, swap the restored data in, start the units."""
    restic = backups.restic()
    snapshot, name = await backups.find_snapshot(ref, service, restic)
    spec = backups.services.get(name) or ServiceSettings(paths=[Path(p) for p in snapshot.paths])
    report = RestoreReport(snapshot, name, into_place=True, units=list(spec.units))
    listing = await _listing(backups, restic, snapshot)
    staged: list[tuple[Path, Path]] = []
    try:
        for live in map(Path, snapshot.paths):
            stage = staging_dir(live, snapshot)
            await asyncio.to_thread(remove_all, [stage])  # left by an interrupted restore
            staged.append((live, stage))
            await _say(progress, f"restoring {live} into a temporary directory", None)
            restored = await _restore_path(backups, restic, snapshot, listing, live, stage)
            report.paths.append(RestoredPath(str(live), str(live), restored[0], restored[1]))
        await _say(progress, "snapshot of the current data (pre-restore)", None)
        report.pre_restore = await _pre_restore_snapshot(backups, restic, name, spec, snapshot, report)
        then = lambda: _reimport(backups, name, spec, snapshot, progress, report)  # noqa: E731
        stopper = backups.stoppers.get(name) if not spec.units else None
        mark = await _owe_the_restore(backups, name, spec, stopper, staged, snapshot, report)
        try:
            swap = lambda: _swap_and_import(staged, progress, then, mark)  # noqa: E731
            if stopper is not None:
                report.units = [stopper.what]
                await _swap_with_stopper(stopper, progress, report, swap)
            else:
                await _swap_with_units_stopped(backups, spec.units, progress, report, swap)
        finally:
            await backups.log.paid(f"restore:{name}")    # the units are started again, whatever happened
    finally:
        await asyncio.to_thread(remove_all, [stage for _, stage in staged])
        if spec.database is not None:
            await asyncio.to_thread(remove_all, [backups.dump_dir(name)])
    await _check_after(backups, name, progress, report)
    return report


async def _reimport(backups: "Backups", name: str, spec: ServiceSettings, snapshot: Snapshot,
                    progress: Progress | None, report: RestoreReport) -> None:
    """With the units still stopped: the snapshot's database dump back into the live database."""
    if spec.database is None:
        return
    what = spec.database.describe()
    if str(backups.dump_dir(name)) not in snapshot.paths:
        report.warnings.append(f"snapshot {snapshot.short_id} holds no dump of the {what}: the database was "
                               "left as it is")
        return
    await _say(progress, f"importing the dump of the {what}", None)
    try:
        await databases.reimport(spec.database, backups.dump_dir(name), backups.settings.command_timeout)
    except databases.DatabaseError as exc:
        report.warnings.append(f"importing the {what} failed: {exc}; its dump was restored but not imported")
        return
    report.database = f"the {what} was imported from the snapshot's dump"


async def _check_after(backups: "Backups", name: str, progress: Progress | None, report: RestoreReport) -> None:
    """The service's own check after the restore (its health check, when a feature gave one)."""
    check = backups.after_restore.get(name)
    if check is None:
        return
    await _say(progress, f"checking {name}", None)
    try:
        report.health = await check()
    except Exception as exc:          # the restore is done either way: say what the check could not do
        report.health = f"⚠️ the check after the restore failed: {exc.__class__.__name__}"


async def to(backups: "Backups", ref: str, service: str | None, target: Path,
             progress: Progress | None = None) -> RestoreReport:
    """Restore next to the live data without touching it: into `target` (new or empty), as
    target/<service>/<path below the snapshot's common parent> — one path /srv/data/photos of
    service `photos` lands in target/photos/photos, not target/srv/data/photos."""
    restic = backups.restic()
    snapshot, name = await backups.find_snapshot(ref, service, restic)
    check_target(target, snapshot, backups.services.values())
    return await _copy_out(backups, restic, snapshot, name, target, progress)


async def all_to(backups: "Backups", target: Path, progress: Progress | None = None) -> list[RestoreReport]:
    """The latest snapshot of every configured service, each into target/<service>/… (target new or
    empty); services without a snapshot yet are left out (the caller says so)."""
    restic = backups.restic()
    latest = {name: (await backups.snapshots(name, restic))[-1:] for name in backups.services}
    chosen = [(snaps[0], name) for name, snaps in latest.items() if snaps]
    if not chosen:
        raise UserError("there is no snapshot to restore yet", "run !backup now first")
    for snapshot, _ in chosen:
        check_target(target, snapshot, backups.services.values())
    return [await _copy_out(backups, restic, snapshot, name, target, progress) for snapshot, name in chosen]


async def _copy_out(backups: "Backups", restic: Restic, snapshot: Snapshot, name: str, target: Path,
                    progress: Progress | None) -> RestoreReport:
    listing = await _listing(backups, restic, snapshot)
    report = RestoreReport(snapshot, name, into_place=False)
    stage = target / f".spbot-restoring-{snapshot.short_id}"
    await _say(progress, f"restoring snapshot {snapshot.short_id} into {target}", None)
    try:
        await restic.restore(snapshot.id, stage, verify=True, timeout=backups.settings.timeout)
        places = copy_places(snapshot.paths, target / name)
        for live, copy in places.items():
            part = sub_listing(listing, live)
            files, size = await asyncio.to_thread(check_restored, part, stage, live)
            await asyncio.to_thread(move_into, stage / live.lstrip("/"), copy)
            report.paths.append(RestoredPath(live, str(copy), files, size))
    except ResticError as exc:
        raise UserError(f"restoring snapshot {snapshot.short_id} into {target} failed: {exc}",
                        advice(exc.kind, backups)) from None
    finally:
        await asyncio.to_thread(remove_all, [stage])
    return report


async def _listing(backups: "Backups", restic: Restic, snapshot: Snapshot) -> Listing:
    try:
        return await restic.ls(snapshot.id)
    except ResticError as exc:
        raise restic_user_error(exc, backups) from None


async def _restore_path(backups: "Backups", restic: Restic, snapshot: Snapshot, listing: Listing, live: Path,
                        stage: Path) -> tuple[int, int]:
    try:
        await restic.restore(snapshot.id, stage, include=[restic_pattern(str(live))], verify=True,
                             timeout=backups.settings.timeout)
    except ResticError as exc:
        raise UserError(f"restoring {live} from snapshot {snapshot.short_id} failed, nothing live was "
                        f"changed: {exc}", advice(exc.kind, backups)) from None
    return await asyncio.to_thread(check_restored, sub_listing(listing, str(live)), stage, str(live))


async def _pre_restore_snapshot(backups: "Backups", restic: Restic, name: str, spec: ServiceSettings,
                                snapshot: Snapshot, report: RestoreReport) -> str:
    existing = [Path(p) for p in snapshot.paths if os.path.lexists(p)]
    if not existing:
        report.warnings.append("there was no live data to snapshot before the restore")
        return ""
    outcome = await backups.backup_service(restic, name, spec, "pre-restore", paths=existing)
    await backups.log.record(outcome)
    if not outcome.ok:
        raise UserError(f"the pre-restore snapshot of the current data failed, so nothing was replaced: "
                        f"{outcome.error}", outcome.todo)
    return outcome.snapshot_id


async def _owe_the_restore(backups: "Backups", name: str, spec: ServiceSettings, stopper: Stopper | None,
                           staged: list[tuple[Path, Path]], snapshot: Snapshot,
                           report: RestoreReport) -> Callable[[str], Awaitable[None]]:
    """Recorded before the service is stopped, so that a stop of the bot from here on still gets it
    started again and its data put back or tidied (recovery.py); returns how to note each phase:
    replacing (the data may be half swapped), replaced (the restored data is in place), imported."""
    key = f"restore:{name}"
    entry = {"kind": "restore", "service": name, "units": list(spec.units), "stopper": stopper is not None,
             "staged": [[str(live), str(stage)] for live, stage in staged], "snapshot": snapshot.short_id,
             "pre_restore": report.pre_restore, "database": spec.database is not None, "since": time.time()}

    async def mark(phase: str) -> None:
        await backups.log.owe(key, {**entry, "phase": phase})
    await mark("replacing")
    return mark


async def _swap_and_import(staged: list[tuple[Path, Path]], progress: Progress | None,
                           then: Callable[[], Awaitable[None]], mark: Callable[[str], Awaitable[None]]) -> None:
    await _say(progress, "moving the restored data into place", None)
    replaced = await asyncio.to_thread(swap_into_place, staged)
    await mark("replaced")
    await asyncio.to_thread(remove_all, replaced)
    await then()
    await mark("imported")


async def _swap_with_units_stopped(backups: "Backups", units: list[str], progress: Progress | None,
                                   report: RestoreReport, swap: Callable[[], Awaitable[None]]) -> None:
    if units:
        await _say(progress, f"stopping {', '.join(units)}", None)
        await systemctl(backups, "stop", units, report.warnings, must=True)
    try:
        await swap()
    finally:
        if units:
            await _say(progress, f"starting {', '.join(units)}", None)
            await systemctl(backups, "start", units, report.warnings, must=False)


async def _swap_with_stopper(stopper: Stopper, progress: Progress | None, report: RestoreReport,
                             swap: Callable[[], Awaitable[None]]) -> None:
    """As _swap_with_units_stopped, for a service another feature stops and starts (its containers)."""
    await _say(progress, f"stopping {stopper.what}", None)
    try:
        await stopper.stop()
    except Exception as exc:
        await start_with(stopper, report.warnings)
        raise UserError(f"stopping {stopper.what} failed, so nothing was replaced: {exc}",
                        "check it with !services, then try the restore again") from None
    try:
        await swap()
    finally:
        await _say(progress, f"starting {stopper.what}", None)
        await start_with(stopper, report.warnings)


async def start_with(stopper: Stopper, warnings: list[str]) -> None:
    try:
        await stopper.start()
    except Exception as exc:
        warnings.append(f"starting {stopper.what} failed ({exc}): check it now (!services)")


async def systemctl(backups: "Backups", action: str, units: list[str], warnings: list[str], *,
                    must: bool) -> None:
    """systemctl <action> on the units; a failure is a warning, or (`must`) starts them again and raises."""
    try:
        result = await run([backups.settings.systemctl, action, "--", *units],
                           timeout=backups.settings.command_timeout)
        problem = "" if result.ok else (f"exit {result.returncode}: {result.tail(2)}" if not result.timed_out
                                        else f"no answer in {result.duration:.0f} s")
    except ProcError as exc:
        problem = str(exc)
    if not problem:
        return
    if must:
        await systemctl(backups, "start", units, warnings, must=False)
        raise UserError(f"systemctl {action} {' '.join(units)} failed, so nothing was replaced: {problem}",
                        "check the units with !services or journalctl, then try the restore again")
    warnings.append(f"systemctl {action} {' '.join(units)} failed ({problem}): check them now "
                    "(journalctl -u <unit>)")


async def _say(progress: Progress | None, step: str, fraction: float | None) -> None:
    if progress is not None:
        await progress(step, fraction)
