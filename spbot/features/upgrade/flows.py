"""Check, upgrade, rollback and the generations list, shared by the chat commands
(spbot/commands/upgrade.py) and the schedule: each finds this machine's driver, streams the tool's log
into the job's progress, and turns a tool failure into a clear chat error."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from spbot.context import UserError
from spbot.render import human_duration
from spbot.system.osinfo import OsInfo

from .backup_first import backup_before_upgrade
from .drivers.apt import AptDriver
from .drivers.errors import ActivationFailed, BuildFailed, PackageManagerBusy, UpgradeError
from .drivers.nixos import NixosDriver
from .drivers.results import CheckResult, Generation, UpgradeResult
from .live_log import LiveLog, guarded
from .machine import system_driver
from .render import pending_summary
from .settings import UpgradeSettings

if TYPE_CHECKING:
    from spbot.feature import Host
    from spbot.jobs import Job

LOCKS = frozenset({"system", "packages"})      # upgrade, rollback: exclusive with backups and checks
CHECK_LOCKS = frozenset({"packages"})          # a check only needs apt/nix to itself
LAST_CHECK_KEY = "upgrade:last_check"


class PackageManagerBusyError(UserError):
    """apt/dpkg is locked by another process: nothing was changed, try again later."""


class UpgradeFlows:
    def __init__(self, host: "Host", settings: UpgradeSettings):
        self.host = host
        self.settings = settings

    def system(self) -> tuple[OsInfo, AptDriver | NixosDriver]:
        """This machine's OS and its driver; a UserError on a system spbot cannot upgrade."""
        return system_driver(self.settings)

    async def check(self, job: "Job | None", refresh: bool = True) -> tuple[OsInfo, CheckResult]:
        info, tool = self.system()
        live = LiveLog(job, "checking for updates")
        await live.show(live.step)
        try:
            result = await guarded(live, tool.check(refresh=refresh, on_line=live))
        except UpgradeError as exc:
            raise await failure(live, exc, "checking for updates")
        await self.remember_check(info, result)
        return info, result

    async def upgrade(self, job: "Job | None", backup: bool = True) -> tuple[OsInfo, UpgradeResult, str]:
        """The pre-upgrade backup, then the upgrade with its log streamed into the job's progress."""
        info, tool = self.system()
        live = LiveLog(job, "starting")
        backup_line = await self.pre_upgrade_backup(live, backup)
        await live.show("upgrading")
        try:
            result = await guarded(live, tool.upgrade(on_line=live))
        except UpgradeError as exc:
            raise await failure(live, exc, "the upgrade")
        await self.host.store.put(LAST_CHECK_KEY, None)       # what was pending is stale now
        return info, result, backup_line

    async def rollback(self, job: "Job | None") -> tuple[OsInfo, UpgradeResult]:
        info, tool = self.system()
        if not isinstance(tool, NixosDriver):
            raise rollback_unavailable(info)
        live = LiveLog(job, "switching to the previous generation")
        await live.show(live.step)
        try:
            return info, await guarded(live, tool.rollback(on_line=live))
        except UpgradeError as exc:
            raise await failure(live, exc, "the rollback")

    async def generations(self) -> tuple[OsInfo, list[Generation]]:
        info, tool = self.system()
        if not isinstance(tool, NixosDriver):
            raise UserError(f"there are no system generations on {info.pretty_name}: they are a NixOS "
                            "feature", "Send !upgrade check to see what is pending.")
        try:
            return info, await tool.generations()
        except UpgradeError as exc:
            raise UserError(str(exc), "Check that nix-env works on the server.")

    # -- the pre-upgrade backup ---------------------------------------------------------------

    def backup_skipped(self, wanted: bool) -> str | None:
        """Why no backup runs before the upgrade, or None when one will."""
        if not wanted:
            return "no backup first (--no-backup)"
        if not self.settings.pre_upgrade_backup:
            return "no backup first (pre_upgrade_backup = false)"
        if backup_before_upgrade(self.host) is None:
            return "no backup first: no services are set up in [backup]"
        return None

    async def pre_upgrade_backup(self, live: LiveLog, wanted: bool) -> str:
        """A snapshot of every configured service before the upgrade; a line for the final report.
        Any failure stops here, before anything is upgraded."""
        skipped = self.backup_skipped(wanted)
        if skipped:
            return skipped
        back_up = backup_before_upgrade(self.host)

        async def progress(step: str, fraction: float | None) -> None:
            await live.show(f"backup before the upgrade: {step}", [])

        await progress("starting", None)
        try:
            outcomes = await back_up(progress)
        except UserError as exc:
            outcomes, error = [], exc
        else:
            failed = [o for o in outcomes if not o.ok]
            error = UserError("; ".join(f"{o.service}: {o.error}" for o in failed), failed[0].todo) \
                if failed else None
        if error is not None:
            todo = error.todo.rstrip(". ")
            raise UserError(f"the backup before the upgrade failed, so nothing was upgraded: {error.what}",
                            (f"{todo[0].upper()}{todo[1:]}; or " if todo else "") +
                            "send !upgrade --no-backup to upgrade without a backup.")
        return "backed up first: " + ", ".join(f"{o.service} (snapshot {o.snapshot_id})" for o in outcomes)

    # -- the last check -----------------------------------------------------------------------

    async def remember_check(self, info: OsInfo, result: CheckResult) -> None:
        await self.host.store.put(LAST_CHECK_KEY, {"at": time.time(), "os": info.pretty_name,
                                                   "summary": pending_summary(result),
                                                   "reboot": result.reboot.required})

    async def last_check_line(self, info: OsInfo) -> str:
        last = await self.host.store.get(LAST_CHECK_KEY)
        if not last or last["os"] != info.pretty_name:
            return "No recent check: send !upgrade check first to see what would change."
        return f"Last check {human_duration(time.time() - last['at'])} ago: {last['summary']}."


def rollback_unavailable(info: OsInfo) -> UserError:
    return UserError(f"!rollback is not available on {info.pretty_name}: apt replaces packages in "
                     "place and keeps no previous system to go back to (that is a NixOS feature).",
                     "To undo one package, install its older version by hand (apt-get install "
                     "name=version), or restore from a backup.")


async def failure(live: LiveLog, exc: UpgradeError, what: str) -> UserError:
    """A tool failure as a clear chat error; its last log lines stay in the progress message."""
    if exc.tail:
        await live.show(f"{what} failed", exc.tail[-12:])
    if isinstance(exc, PackageManagerBusy):
        return PackageManagerBusyError(f"{what} did not start: {exc}", "Nothing was changed. Wait a "
                                       "few minutes (another upgrade is probably running) and send "
                                       "the command again.")
    if isinstance(exc, ActivationFailed):
        return UserError(str(exc), "Some services may not have started: see the log lines above, "
                         "and send !rollback to go back to the previous generation.")
    if isinstance(exc, BuildFailed):
        return UserError(str(exc), "The log lines above show the error; fix the configuration (or "
                         "wait for a fixed package) and try again.")
    return UserError(f"{what} stopped: {exc}", "The last log lines are in the progress message "
                     "above. The server may be half-upgraded: send !upgrade check, and ask someone "
                     "with shell access if it keeps failing.")
