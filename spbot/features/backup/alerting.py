"""What backups tell the admins unasked: a failed backup, a set-up that keeps automatic backups from
running, a drill that found damage, a service without a recent success (the watchdog). Each alert is
cleared again once the cause is gone."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from spbot.context import UserError
from spbot.features.heartbeat import HeartbeatFeature
from spbot.render import Reply, human_duration

from .model import Outcome, Progress
from .render import local_time, render_drill

if TYPE_CHECKING:
    from spbot.feature import Host

    from .service import Backups


async def run_and_alert(host: "Host", backups: "Backups", names: Sequence[str], reason: str,
                        progress: Progress | None = None,
                        on_outcome: Callable[[Outcome], Awaitable[None]] | None = None) -> list[Outcome]:
    """Back up, then alert the admins (with a mention) on each failure and clear it on success. The
    heartbeat ([heartbeat], if set) is told when the run starts and how it ended, so an outside service
    notices backups that fail or never finish."""
    heartbeat = _heartbeat(host)
    what = f"{reason} backup"
    if heartbeat is not None:
        await heartbeat.started(what)
    try:
        outcomes = await backups.run(names, reason, progress, on_outcome)
    except UserError as exc:
        if heartbeat is not None:
            await heartbeat.finished(what, exc.what)
        if reason == "auto":
            await host.alerts.fire("backup:setup", "critical", f"automatic backups cannot run: {exc.what}", exc.todo)
        raise
    except BaseException as exc:               # a crash or a cancel: the run did not finish either
        if heartbeat is not None:
            await heartbeat.finished(what, "cancelled" if isinstance(exc, asyncio.CancelledError)
                                     else exc.__class__.__name__)
        raise
    if heartbeat is not None:
        failed = [f"{o.service}: {o.error}" for o in outcomes if not o.ok and not o.skipped]
        await heartbeat.finished(what, "; ".join(failed) or None)
    await host.alerts.clear("backup:setup", "backups can run again")
    for o in outcomes:
        key = f"backup:failed:{o.service}"
        if o.ok:
            await host.alerts.clear(key, f"{o.service} was backed up again (snapshot {o.snapshot_id})")
        elif not o.skipped:
            others = [x.service for x in outcomes if x.skipped]
            note = f" ({', '.join(others)} not attempted)" if others else ""
            await host.alerts.fire(key, "warning", f"{reason} backup of {o.service} failed{note}: {o.error}", o.todo)
    return outcomes


def _heartbeat(host: "Host") -> "HeartbeatFeature | None":
    try:
        return host.feature(HeartbeatFeature)
    except LookupError:                        # a bot without the heartbeat feature (tests, plugins)
        return None


async def drill_and_alert(host: "Host", backups: "Backups", names: Sequence[str] = ()) -> Reply:
    results = await backups.drill(names)
    for r in results:
        key = f"backup:drill:{r.service}"
        if r.mismatches:
            await host.alerts.fire(key, "critical",
                                   f"restore drill of {r.service}: {len(r.mismatches)} file(s) restored from "
                                   f"snapshot {r.snapshot.short_id} differ from the live copy although unchanged "
                                   f"since: {', '.join(r.mismatches[:3])}",
                                   "the live file or the backup is damaged: compare by hand after !backup restore "
                                   f"{r.snapshot.short_id} {r.service} --to /root/check, and run restic check")
        elif r.error and r.error != "no snapshot yet":
            await host.alerts.fire(key, "warning", f"restore drill of {r.service} failed: {r.error}",
                                   "see the message; run !backup drill again once it is fixed")
        else:
            await host.alerts.clear(key, f"restore drill of {r.service} passes again")
    return render_drill(results)


async def overdue(backups: "Backups", now: float) -> list[tuple[str, float, Any]]:
    """(service, seconds since its last success or since spbot first knew it, last success row)."""
    late = []
    for name in sorted(backups.services):
        row = await backups.log.last_success(name)
        since = row["ended"] if row is not None else await backups.log.first_seen(name, now)
        if now - since > backups.settings.max_age:
            late.append((name, now - since, row))
    return late


async def watchdog_pass(host: "Host", backups: "Backups", now: float | None = None) -> None:
    """Alert on every service without a successful backup for longer than max_age. It reads the run
    log, not the scheduler: a schedule that never fired is caught as well."""
    now = time.time() if now is None else now
    late = {name: (age, row) for name, age, row in await overdue(backups, now)}
    for name in sorted(backups.services):
        key = f"backup:stale:{name}"
        if name in late:
            age, row = late[name]
            last = f"last success {local_time(row['ended'], host.config.timezone)}" if row else "never backed up"
            await host.alerts.fire(key, "critical", f"no successful backup of {name} for {human_duration(age)} "
                                   f"({last})", f"see !backup stats and the last failure; run !backup now {name}")
        else:
            await host.alerts.clear(key, f"{name} has a recent backup again")
