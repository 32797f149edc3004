"""The backups' scheduled work: automatic backups, retention, the restore drill and the daily digest on
their cron lines (each a job with the bot as requester, skipped while another job holds the system lock),
and the watchdog loop."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from spbot.context import UserError
from spbot.feature import Scheduled
from spbot.jobs import JobRefused
from spbot.logs import get_logger
from spbot.render import Reply
from spbot.scheduler import cron_trigger

from .alerting import drill_and_alert, run_and_alert, watchdog_pass
from .render import render_digest
from .settings import enabled

if TYPE_CHECKING:
    from spbot.feature import Host

    from .service import Backups

log = get_logger(__name__)


@dataclass(frozen=True)
class CronJob(Scheduled):
    """A cron entry that still runs (once) when it missed its time by at most [backup] misfire_grace."""
    misfire_grace: float = 3600.0

    def add_to(self, scheduler, tz: str) -> None:
        scheduler.add_job(self.run, cron_trigger(self.cron, tz), id=self.id, name=self.name,
                          replace_existing=True, misfire_grace_time=int(self.misfire_grace),
                          coalesce=True, max_instances=1)


class BackupSchedule:
    def __init__(self, host: "Host", backups: "Backups"):
        self.host = host
        self.backups = backups

    def jobs(self) -> list[Scheduled]:
        """The enabled cron entries; none when no service is configured."""
        s = self.backups.settings
        if not self.backups.services:
            return []
        entries = [("backup-auto", "automatic backup", s.schedule, self.backup),
                   ("backup-retention", "backup retention", s.retention_schedule, self.retention),
                   ("backup-drill", "backup restore drill", s.drill_schedule, self.drill),
                   ("backup-digest", "backup digest", s.digest_schedule, self.digest)]
        return [CronJob(job_id, name, run, cron=expr, misfire_grace=s.misfire_grace)
                for job_id, name, expr, run in entries if enabled(expr)]

    async def backup(self) -> None:
        """An automatic backup of every service, quiet on success."""
        async def work(job) -> Reply | None:
            try:
                await run_and_alert(self.host, self.backups, (), "auto")
            except UserError:
                pass  # alerted in run_and_alert
            return None

        try:
            await self.host.jobs.run_scheduled("backup now", work, locks=frozenset({"system"}))
        except JobRefused as exc:
            log.info("backup_auto_skipped", reason=str(exc))

    async def retention(self) -> None:
        async def work(job) -> Reply | None:
            try:
                result = await self.backups.forget()
            except UserError as exc:
                await self.host.alerts.fire("backup:retention", "warning",
                                            f"applying backup retention failed: {exc.what}", exc.todo)
                return None
            await self.host.alerts.clear("backup:retention", "backup retention works again")
            await self.host.store.put("backup:last_forget", {"time": time.time(), "kept": len(result.kept),
                                                             "removed": len(result.removed)})
            return None

        try:
            await self.host.jobs.run_scheduled("backup prune", work, locks=frozenset({"system"}))
        except JobRefused as exc:
            log.info("backup_forget_skipped", reason=str(exc))

    async def drill(self) -> None:
        async def work(job) -> Reply | None:
            try:
                return await drill_and_alert(self.host, self.backups)
            except UserError as exc:
                await self.host.alerts.fire("backup:drill", "warning", f"restore drill could not run: {exc.what}",
                                            exc.todo)
                return None

        try:
            await self.host.jobs.run_scheduled("backup drill", work, locks=frozenset({"system"}))
        except JobRefused as exc:
            log.info("backup_drill_skipped", reason=str(exc))

    async def digest(self) -> None:
        reply = await render_digest(self.backups, time.time(), self.host.config.timezone)
        if reply is not None:
            await self.host.notify(reply)

    async def watch(self) -> None:
        # A plain task, not an APScheduler job: it keeps watching even if the scheduler is stuck.
        interval = max(self.backups.settings.watchdog_interval, 1.0)
        while True:
            try:
                await watchdog_pass(self.host, self.backups)
            except Exception:
                log.exception("backup_watchdog_failed")
            await asyncio.sleep(interval)
