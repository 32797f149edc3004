"""The disk sampler: every `sample_interval` it reads the usage of every watched mount, records it and
applies the rules (spbot/features/disk/rules.py); alerts go through the host's alerts (one per mount
and condition, persisted, re-notified, recovery notices)."""
from __future__ import annotations

import time
from typing import Any, Iterable

from spbot.logs import get_logger
from spbot.render import human_bytes
from spbot.system.disks import MountUsage
from spbot.system.forecast import DAY, Trend, trend

from .rules import DiskFinding, apply_finding, forecast_bad, level, space_text, todo_for
from .samples import COMPACT_EVERY, SampleStore
from .settings import TREND_DAYS, DiskSettings
from .usage import UsageUnavailable, read_usage, watched

log = get_logger(__name__)


class DiskWatch:
    """The sampler and the rules for one bot; `tick` is what the scheduler runs."""

    def __init__(self, host: Any, settings: DiskSettings):
        self.host = host
        self.settings = settings
        self.samples = SampleStore(host.store)
        self._last_compact = 0.0
        self._source_failing = False

    async def start(self) -> None:
        await self.samples.start()

    async def tick(self, now: float | None = None) -> None:
        """Sample, apply the rules, compact now and then. Never raises (a scheduler job)."""
        now = time.time() if now is None else now
        try:
            usages = watched(await read_usage(self.settings), self.settings)
        except UsageUnavailable as exc:
            if not self._source_failing:
                log.warning("disk_usage_unavailable", error=str(exc))
            self._source_failing = True
            return
        except Exception:
            log.exception("disk_sampler_failed")
            return
        self._source_failing = False
        try:
            await self.samples.record(usages, now)
            await self.check(usages, now)
            if now - self._last_compact >= COMPACT_EVERY:
                self._last_compact = now
                removed = await self.samples.compact(now, self.settings.history_days)
                if removed:
                    log.info("disk_samples_compacted", removed=removed)
        except Exception:
            log.exception("disk_check_failed")

    async def trend_of(self, mount: str, now: float) -> Trend:
        return trend(await self.samples.history(mount, now - TREND_DAYS * DAY), now, TREND_DAYS)

    async def check(self, usages: Iterable[MountUsage], now: float) -> list[DiskFinding]:
        """Apply every rule to every mount and pass the findings to the alerts."""
        findings: list[DiskFinding] = []
        for usage in usages:
            findings += await self.findings_for(usage, now)
        for finding in findings:
            await apply_finding(self.host, finding, self.settings.renotify, now)
        return findings

    async def findings_for(self, usage: MountUsage, now: float) -> list[DiskFinding]:
        mount = usage.mountpoint
        unreadable = DiskFinding(f"disk:{mount}:unreadable", None, f"{mount} answers again")
        if not usage.available:
            unreadable.severity = "warning"
            unreadable.text = f"{mount} does not answer: {usage.error or 'unknown error'}"
            unreadable.todo = ("check the disk or network share on the server; !disk shows the other "
                               "mounts meanwhile")
            return [unreadable]
        return [unreadable, await self._space(usage), await self._inodes(usage),
                await self._forecast(usage, now)]

    async def _active(self, key: str) -> str | None:
        state = await self.host.alerts.state(key)
        return state.severity if state is not None and state.active else None

    async def _space(self, usage: MountUsage) -> DiskFinding:
        mount, limits = usage.mountpoint, self.settings.limits(usage.mountpoint)
        key = f"disk:{mount}:usage"
        severity = level(usage.percent, limits.warn, limits.critical, self.settings.hysteresis,
                         await self._active(key))
        if severity is None:
            return DiskFinding(key, None, f"{mount} is back to {usage.percent:.0f}% full ({space_text(usage)})")
        almost = "almost full" if severity == "critical" else "filling up"
        return DiskFinding(key, severity, f"{mount} is {almost}: {usage.percent:.0f}% used, "
                           f"{space_text(usage)}", todo_for(mount),
                           grow_mount=mount if severity == "critical" else None)

    async def _inodes(self, usage: MountUsage) -> DiskFinding:
        mount, s = usage.mountpoint, self.settings
        key = f"disk:{mount}:inodes"
        percent = usage.inodes_percent or 0.0
        severity = level(percent, s.inode_warn_percent, s.inode_critical_percent, s.hysteresis,
                         await self._active(key))
        if severity is None:
            return DiskFinding(key, None, f"{mount} has enough free inodes again ({percent:.0f}% used)")
        return DiskFinding(key, severity, f"{mount} is running out of inodes (room for files): {percent:.0f}% "
                           f"used", f"many small files: find where with !disk {mount} (old caches, sessions, "
                           f"mail queues), then delete what is not needed")

    async def _forecast(self, usage: MountUsage, now: float) -> DiskFinding:
        mount, days = usage.mountpoint, self.settings.limits(usage.mountpoint).forecast_days
        key = f"disk:{mount}:forecast"
        result = await self.trend_of(mount, now)
        if not forecast_bad(result, days, await self._active(key) is not None):
            return DiskFinding(key, None, f"{mount} is no longer filling up fast ({result.text})")
        return DiskFinding(key, "warning", f"{mount} will be {result.text} at the current rate "
                           f"(+{human_bytes(result.bytes_per_day)}/day, {usage.percent:.0f}% used now)",
                           todo_for(mount), grow_mount=mount)
