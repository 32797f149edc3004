"""What a stop of the bot (a crash, the OOM killer, a reboot) left undone in the middle of a backup or a
restore, finished at the next start: a service's post commands once its pre commands had run (they may
restart what the pre commands stopped), and a restore's stopped service with its data half swapped.
The steps are recorded before they begin (RunLog.owe) and cleared when done; each line returned says
what was found and what was done, for the admins."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spbot.logs import get_logger

from .model import Outcome
from .restore import start_with, systemctl
from .restore_files import aside_of, put_back, remove_all

if TYPE_CHECKING:
    from .service import Backups

log = get_logger(__name__)


async def finish_what_a_stop_left(backups: "Backups") -> list[str]:
    lines = []
    for key, entry in (await backups.log.owed()).items():
        try:
            line = await (_post_commands if entry["kind"] == "post" else _restore)(backups, entry)
        except Exception:            # one broken record must not keep the others (or the bot) from starting
            log.exception("backup_recovery_failed", key=key)
            line = (f"I was stopped in the middle of a {entry.get('kind', 'backup')} of "
                    f"{entry.get('service', 'a service')} and could not finish it (the details are in my log): "
                    "check that service now (!services)")
        await backups.log.paid(key)
        lines.append(line)
    return lines


async def _post_commands(backups: "Backups", entry: dict[str, Any]) -> str:
    name = entry["service"]
    start = f"I was stopped during the backup of {name}, after its pre commands"
    spec = backups.services.get(name)
    if spec is None or not spec.post:
        return f"{start}; its post commands are no longer in my configuration, so none ran: check {name} now"
    outcome = Outcome(name, "recovery")
    if await backups.post_commands(name, spec, outcome):
        return f"{start}: I ran its post commands now"
    return f"{start}: I ran its post commands now, but {'; '.join(outcome.warnings)}: check {name} now"


async def _restore(backups: "Backups", entry: dict[str, Any]) -> str:
    name, phase = entry["service"], entry["phase"]
    staged = [(Path(live), Path(stage)) for live, stage in entry["staged"]]
    if phase == "replacing":
        back = await asyncio.to_thread(put_back, staged)
        data = ("I put the data back as it was before the restore" if back
                else "nothing had been replaced yet")
    else:
        await asyncio.to_thread(remove_all, [aside_of(live, stage) for live, stage in staged])
        data = "the restored data was already in place"
    await asyncio.to_thread(remove_all, [stage for _, stage in staged])
    if entry.get("database"):
        await asyncio.to_thread(remove_all, [backups.dump_dir(name)])
    warnings: list[str] = []
    started = await _start_again(backups, entry, warnings)
    line = f"I was stopped in the middle of restoring {name} from snapshot {entry['snapshot']}: {data}"
    if started:
        line += f", and started {started} again"
    if entry.get("database") and phase == "replaced":
        line += (f". Its database import was cut short: restore it again (!backup restore {entry['snapshot']} "
                 f"{name})")
        if entry.get("pre_restore"):
            line += f" or go back to the data from before (!backup restore {entry['pre_restore']} {name})"
    elif phase == "replacing":
        line += ". Nothing was restored: send the restore again if you still want it"
    if warnings:
        line += ". But " + "; ".join(warnings)
    return line


async def _start_again(backups: "Backups", entry: dict[str, Any], warnings: list[str]) -> str:
    """What the restore had stopped, started (a unit that is already running stays so)."""
    if entry["units"]:
        await systemctl(backups, "start", entry["units"], warnings, must=False)
        return ", ".join(entry["units"])
    stopper = backups.stoppers.get(entry["service"]) if entry.get("stopper") else None
    if stopper is None:
        if entry.get("stopper"):
            warnings.append(f"I no longer know how to start {entry['service']}: start it yourself")
        return ""
    await start_with(stopper, warnings)
    return stopper.what
