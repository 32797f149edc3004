"""The scheduled upgrade work: the daily check (posted only when the set of pending updates is new)
and the optional automatic upgrade window, each run as a job with the bot as requester."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Awaitable, Callable

from spbot.context import UserError
from spbot.feature import Scheduled
from spbot.jobs import JobRefused
from spbot.logs import get_logger
from spbot.render import Reply, mention

from .flows import CHECK_LOCKS, LOCKS, PackageManagerBusyError, UpgradeFlows
from .reboot import Reboots
from .render import pending_key, render_check, render_upgrade
from .settings import UpgradeSettings

if TYPE_CHECKING:
    from spbot.jobs import Job

    from .feature import UpgradeHost

log = get_logger(__name__)

POSTED_KEY = "upgrade:posted_pending"
CHECK_ALERT = "upgrade:check-failed"

Work = Callable[["Job"], Awaitable[Reply | None]]


class UpgradeSchedule:
    def __init__(self, host: "UpgradeHost", settings: UpgradeSettings, flows: UpgradeFlows, reboots: Reboots):
        self.host = host
        self.settings = settings
        self.flows = flows
        self.reboots = reboots

    def jobs(self) -> list[Scheduled]:
        """The daily check and the upgrade window, as the settings ask; none on a system spbot cannot
        upgrade (there would be nothing to check, every day)."""
        try:
            self.flows.system()
        except UserError as exc:
            log.warning("upgrades_not_scheduled", reason=exc.what)
            return []
        jobs = []
        if self.settings.check_enabled:
            jobs.append(Scheduled("upgrade-check", "upgrade check", self.start_check, cron=self.settings.check_cron))
        if self.settings.auto_upgrade:
            jobs.append(Scheduled("upgrade-auto", "automatic upgrade", self.start_window,
                                  cron=self.settings.auto_cron))
        return jobs

    async def start_check(self) -> None:
        busy = [lock for lock in CHECK_LOCKS if lock in self.host.jobs.held]
        if busy:
            # An upgrade is running: checking now is moot, and waiting would post a "waiting" message.
            log.info("scheduled_skipped", work="upgrade check (scheduled)", reason=f"lock {busy[0]} held")
            return
        await self._start("upgrade check (scheduled)", self.scheduled_check, CHECK_LOCKS)

    async def start_window(self) -> None:
        await self._start("upgrade (automatic)", self.automatic_upgrade, LOCKS)

    async def scheduled_check(self, job: "Job") -> Reply | None:
        """The daily check: posts the pending updates only when this set was not posted before."""
        try:
            info, result = await self.flows.check(None)
        except PackageManagerBusyError as exc:      # unattended-upgrades at work: next time then
            log.info("scheduled_check_skipped", reason=exc.what)
            return None
        except UserError as exc:
            await self.host.alerts.fire(CHECK_ALERT, "warning", f"the daily upgrade check failed: {exc.what}",
                                        "send !upgrade check to see the details", renotify=86400)
            return None
        await self.host.alerts.clear(CHECK_ALERT, "the daily upgrade check works again")
        await self.reboots.remind(result.reboot)
        pending = pending_key(result)
        if pending == await self.host.store.get(POSTED_KEY, []):
            return None
        await self.host.store.put(POSTED_KEY, pending)
        return render_check(info, result) if pending else None

    async def automatic_upgrade(self, job: "Job") -> Reply:
        """The upgrade window: no approval (the config enabled it), always reported."""
        try:
            info, result, backup_line = await self.flows.upgrade(job)
        except UserError as exc:
            return mention(self.host.config.admins, f"⚠️ The automatic upgrade failed: {exc.what}\n{exc.todo}")
        await self.reboots.remind(result.reboot)
        return Reply.text("🕓 Automatic upgrade (upgrade window):") + render_upgrade(info, result,
                                                                                   backup_line, job)

    async def _start(self, name: str, work: Work, locks: frozenset[str]) -> None:
        try:
            await self.host.jobs.run_scheduled(name, _safely(name, work), locks=locks)
        except JobRefused as exc:
            log.info("scheduled_skipped", work=name, reason=str(exc))


def _safely(name: str, work: Work) -> Work:
    """Scheduled work must never raise: the job runner would leave the job marked as running."""
    async def run(job: "Job") -> Reply | None:
        try:
            return await work(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("scheduled_work_failed", work=name)
            return Reply.error(f"{name} failed: an internal error ({exc.__class__.__name__}).",
                               "The details are in the bot's log.")
    return run
