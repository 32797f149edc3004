"""The backup feature as one unit: [backup] settings, the Backups service, the scheduled work, the
watchdog, a !status line and the `spbot doctor` checks. Commands reach it with ctx.feature(BackupFeature)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from spbot.feature import Check, Feature, Scheduled
from spbot.render import Reply, human_duration, mention

from . import alerting
from .model import Outcome, Progress, Stopper
from .recovery import finish_what_a_stop_left
from .schedule import BackupSchedule
from .service import Backups
from .settings import BackupSettings, ServiceSettings

if TYPE_CHECKING:
    from spbot.config import Config
    from spbot.feature import Host


class BackupFeature(Feature):
    name = "backup"
    settings_model = BackupSettings
    settings: BackupSettings

    def __init__(self, host: "Host", settings: BackupSettings):
        super().__init__(host, settings)
        self.backups = Backups(settings, host.config.state_dir, host.store)
        self.schedule = BackupSchedule(host, self.backups)
        self._watchdog: asyncio.Task | None = None

    async def start(self) -> None:
        await self.backups.log.start()
        if await self.backups.log.owed():
            self.backups.recovered.clear()      # until after_start has finished it: before any scheduled run
        if self.settings.services:
            self._watchdog = self.host.spawn(self.schedule.watch(), name="backup watchdog")

    async def after_start(self) -> None:
        """What a stop of the bot left undone in a backup or a restore, finished now and told (after the
        other features: a catalogue service's post commands and stopper are theirs)."""
        try:
            lines = await finish_what_a_stop_left(self.backups)
        finally:
            self.backups.recovered.set()
        if lines:
            await self.host.notify(mention(self.host.config.admins, "⚠️ " + "\n⚠️ ".join(lines)))

    def add_services(self, services: dict[str, ServiceSettings],
                     checks: dict[str, Callable[[], Awaitable[str]]] | None = None,
                     stoppers: dict[str, Stopper] | None = None) -> None:
        """Back up these services too (another feature's: the service catalogue), with the check each runs
        after a restore. The schedules and the watchdog start when they are the first services."""
        first = not self.backups.services
        self.backups.extra.update(services)
        self.backups.after_restore.update(checks or {})
        self.backups.stoppers.update(stoppers or {})
        if first and self.backups.services:
            for work in self.scheduled():
                work.add_to(self.host.scheduler, self.host.config.timezone)
            if self._watchdog is None:
                self._watchdog = self.host.spawn(self.schedule.watch(), name="backup watchdog")

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)

    def scheduled(self) -> list[Scheduled]:
        return self.schedule.jobs()

    async def status_lines(self) -> list[str]:
        parts = []
        for name in sorted(self.backups.services):
            row = await self.backups.log.last_success(name)
            parts.append(f"{name} {human_duration(time.time() - row['ended'])} ago" if row else f"{name} never")
        return ["backups (last success): " + ", ".join(parts)] if parts else []

    async def run_and_alert(self, names: Sequence[str], reason: str, progress: Progress | None = None,
                            on_outcome: Callable[[Outcome], Awaitable[None]] | None = None) -> list[Outcome]:
        """Back up (e.g. before an upgrade), alerting the admins on each failure and clearing on success."""
        return await alerting.run_and_alert(self.host, self.backups, names, reason, progress, on_outcome)

    async def drill_and_alert(self, names: Sequence[str] = ()) -> Reply:
        return await alerting.drill_and_alert(self.host, self.backups, names)

    @classmethod
    async def doctor(cls, config: "Config") -> list[Check]:
        """The backup set-up line by line, when the config has a [backup] section."""
        if "backup" not in (config.model_extra or {}):
            return []
        backups = Backups(config.settings("backup"), config.state_dir, None)
        return [Check(mark, f"backup: {text}") for mark, text in await backups.check_setup()]
