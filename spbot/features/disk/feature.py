"""The disk feature: [disk] settings, the sampler and its alerts, the usage history !disk draws, and
the disks line of !status."""
from __future__ import annotations

from spbot.feature import Feature, Scheduled
from spbot.system import disks
from spbot.system.disks import MountUsage
from spbot.system.forecast import DAY

from .render import status_line
from .settings import TREND_DAYS, DiskSettings
from .usage import UsageUnavailable, read_usage
from .watch import DiskWatch


class DiskFeature(Feature):
    name = "disk"
    settings_model = DiskSettings
    settings: DiskSettings

    def __init__(self, host, settings: DiskSettings):
        super().__init__(host, settings)
        self.watch = DiskWatch(host, settings)

    async def start(self) -> None:
        """The samples table; the sampler's first run is a second after start."""
        await self.watch.start()

    def scheduled(self) -> list[Scheduled]:
        return [Scheduled("disk-sampler", "disk sampler and alerts", self.watch.tick,
                          interval=self.settings.sample_interval, first_in=1)]

    async def usage(self, mount: str | None = None) -> list[MountUsage]:
        """Every real filesystem, or the one holding `mount`; UsageUnavailable or ProbeTimeout."""
        return await read_usage(self.settings, mount)

    async def histories(self, usages: list[MountUsage], now: float) -> dict[str, list]:
        """The last 7 days of samples of each mount (for the sparkline and the trend)."""
        samples = self.watch.samples
        return {u.mountpoint: await samples.history(u.mountpoint, now - TREND_DAYS * DAY) for u in usages}

    async def status_lines(self) -> list[str]:
        try:
            usages = await self.usage()
        except (UsageUnavailable, disks.ProbeTimeout) as exc:
            return [f"disks: cannot read the usage ({exc})"]
        return [status_line(usages, self.settings)]
