"""UpgradeFeature: the upgrade flows, the reboot and the schedule of one bot, built from [upgrade]."""
from __future__ import annotations

from typing import Any, Protocol

from spbot.feature import Check, Feature, Host, Scheduled

from .flows import UpgradeFlows
from .reboot import Reboots
from .schedule import UpgradeSchedule
from .settings import UpgradeSettings


class UpgradeHost(Host, Protocol):
    """Beyond the common host: the job runner (scheduled jobs, held locks, a job's task) and the outbox
    (a reboot waits for its notice to leave; the report after it answers the !reboot message)."""
    jobs: Any
    outbox: Any


class UpgradeFeature(Feature):
    name = "upgrade"
    settings_model = UpgradeSettings
    host: UpgradeHost
    settings: UpgradeSettings

    def __init__(self, host: UpgradeHost, settings: UpgradeSettings):
        super().__init__(host, settings)
        self.flows = UpgradeFlows(host, settings)
        self.reboots = Reboots(host, settings, self.flows)
        self.schedule = UpgradeSchedule(host, settings, self.flows, self.reboots)

    @classmethod
    async def doctor(cls, config) -> list[Check]:
        """Which system this is, and that its upgrade tool is there (always: the daily check runs
        without an [upgrade] section)."""
        from .doctor import check_upgrade
        return check_upgrade(config.settings(cls.name))

    async def start(self) -> None:
        await self.reboots.announce_start()

    def scheduled(self) -> list[Scheduled]:
        return self.schedule.jobs()
