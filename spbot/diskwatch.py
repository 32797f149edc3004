"""Disk watching: usage samples in SQLite (bounded, downsampled) and the alert rules over them.

Every `sample_interval` the sampler reads the usage of every watched mount, records it, and applies
the rules: warn / critical thresholds with hysteresis, "full within N days" from the recorded trend,
inode use, and mounts that do not answer. Alerts go through `bot.alerts` (one per mount and
condition, persisted, re-notified, recovery notices); this module only decides when a condition is
bad and when it counts as cleared.

The usage comes from psutil (spbot.system.disks, in threads) unless `[disk] usage_source` names a
JSON file: the boundary where tests and unusual set-ups feed usage in.
"""
from __future__ import annotations

import json
import math
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .config import Duration, config_section
from .logs import get_logger
from .render import human_bytes
from .system import disks
from .system.disks import DiskParams, MountUsage
from .system.forecast import DAY, HOUR, Sample, Trend, downsample, trend

if TYPE_CHECKING:
    from .bot import Bot

log = get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS disk_samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mount TEXT NOT NULL,
    ts REAL NOT NULL,
    used INTEGER NOT NULL,
    total INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS disk_samples_mount_ts ON disk_samples(mount, ts);
"""
TREND_DAYS = 7.0
RAW_DAYS = 1.0          # every sample is kept this long, then hourly means ...
HOURLY_DAYS = 30.0      # ... up to this age, then daily means until history_days
COMPACT_EVERY = HOUR


# --------------------------------------------------------------------------- settings

class MountLimits(BaseModel):
    """[disk.mounts."/srv"]: thresholds for one mount (unset values use the [disk] ones)."""
    model_config = ConfigDict(extra="forbid")
    warn_percent: float | None = Field(
        None, gt=0, le=100,
        description="This mount's warning threshold (unset: [disk] warn_percent).")
    critical_percent: float | None = Field(
        None, gt=0, le=100,
        description="This mount's critical threshold (unset: [disk] critical_percent).")
    forecast_days: float | None = Field(
        None, ge=0,
        description="This mount's forecast horizon (unset: [disk] forecast_days).")


@config_section("disk")
class DiskSettings(DiskParams):
    """[disk]: what !disk shows, what the sampler records and when it alerts."""
    model_config = ConfigDict(extra="forbid")
    usage_source: Path | None = Field(
        None,
        description="A JSON file to read usage from instead of the machine (tests, odd set-ups).")
    sample_interval: Duration = Field(
        300.0,
        description="How often the disk sampler records usage for trends and alerts.")
    watch_mounts: list[str] = Field(
        default_factory=list,
        description="The mounts the alerts watch; empty: every mount !disk shows.")
    warn_percent: float = Field(
        85.0, gt=0, le=100,
        description="Alert (warning) when a filesystem is fuller than this.")
    critical_percent: float = Field(
        95.0, gt=0, le=100,
        description="Alert (critical) when a filesystem is fuller than this.")
    hysteresis: float = Field(
        5.0, ge=0, le=50,
        description="Percentage points below a threshold before its alert clears (no flapping).")
    inode_warn_percent: float = Field(
        90.0, gt=0, le=100,
        description="Alert (warning) when this share of a filesystem's inodes is used.")
    inode_critical_percent: float = Field(
        97.0, gt=0, le=100,
        description="Alert (critical) when this share of a filesystem's inodes is used.")
    inode_show_percent: float = Field(
        80.0, ge=0, le=100,
        description="!disk shows inode use from this share on.")
    forecast_days: float = Field(
        7.0, ge=0,
        description="Alert when the trend says a filesystem is full within this many days; 0: never.")
    renotify: Duration = Field(86400.0, description="How often an alert that still holds is repeated.")
    history_days: float = Field(
        400.0, ge=TREND_DAYS,
        description="How long usage samples are kept (downsampled) for trends.")
    du_depth: int = Field(2, ge=0, le=6, description="How deep !disk <path> looks for the biggest directories.")
    du_time_budget: Duration = Field(20.0, description="How long !disk <path> may spend measuring directories.")
    du_top: int = Field(10, ge=1, le=50, description="How many of the biggest directories !disk <path> lists.")
    mounts: dict[str, MountLimits] = Field(
        default_factory=dict,
        description="Per-mount thresholds, e.g. [disk.mounts.\"/srv\"] warn_percent = 90.")

    @field_validator("mounts")
    @classmethod
    def _mount_keys(cls, mounts: dict[str, MountLimits]) -> dict[str, MountLimits]:
        return {(m.rstrip("/") or "/"): limits for m, limits in mounts.items()}

    @model_validator(mode="after")
    def _ordered(self) -> "DiskSettings":
        for name, warn, critical in [("", self.warn_percent, self.critical_percent),
                                     ("inode_", self.inode_warn_percent, self.inode_critical_percent)]:
            if critical <= warn:
                raise ValueError(f"{name}critical_percent ({critical:g}) must be above "
                                 f"{name}warn_percent ({warn:g})")
        for mount in self.mounts:
            warn, critical = self.limits(mount).warn, self.limits(mount).critical
            if critical <= warn:
                raise ValueError(f"mounts.{mount}: critical_percent ({critical:g}) must be above "
                                 f"warn_percent ({warn:g})")
        return self

    def limits(self, mount: str) -> "Limits":
        own = self.mounts.get(mount.rstrip("/") or "/") or MountLimits()
        return Limits(_or(own.warn_percent, self.warn_percent),
                      _or(own.critical_percent, self.critical_percent),
                      _or(own.forecast_days, self.forecast_days))


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


@dataclass(frozen=True)
class Limits:
    warn: float
    critical: float
    forecast_days: float


def settings_of(bot: "Bot") -> DiskSettings:
    return bot.config.settings("disk")


# --------------------------------------------------------------------------- usage sources

class UsageUnavailable(Exception):
    """The usage source could not be read; the message is safe to show."""


def _usage_from_json(item: dict[str, Any]) -> MountUsage:
    usage = MountUsage.model_validate(item)
    if "percent" not in item and usage.total:
        usage.percent = round(100.0 * usage.used / max(usage.used + usage.free, 1), 1)
    if usage.inodes_percent is None and usage.inodes_total and usage.inodes_used is not None:
        usage.inodes_percent = round(100.0 * usage.inodes_used / usage.inodes_total, 1)
    return usage


def read_usage_file(path: Path) -> list[MountUsage]:
    """Blocking: `{"mounts": [{mountpoint, total, used, free, ...}]}` or a bare list of those."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise UsageUnavailable(f"usage file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageUnavailable(f"usage file {path}: not valid JSON ({exc})") from None
    items = data.get("mounts", []) if isinstance(data, dict) else data
    try:
        return sorted((_usage_from_json(i) for i in items), key=lambda u: u.mountpoint)
    except (ValidationError, TypeError, AttributeError) as exc:
        raise UsageUnavailable(f"usage file {path}: unexpected content ({exc})") from None


async def read_usage(settings: DiskSettings, mount: str | None = None) -> list[MountUsage]:
    """Usage of every real filesystem, or of the one holding `mount` (psutil or the usage file)."""
    if settings.usage_source is None:
        try:
            return await disks.disk_usage(settings, mount)
        except disks.ProbeTimeout as exc:
            raise UsageUnavailable(f"the list of mounts {exc}") from None
    usages = await disks.in_thread(read_usage_file, settings.usage_source,
                                   timeout=settings.probe_timeout)
    if mount is None:
        return usages
    holding = [u for u in usages if mount == u.mountpoint
               or mount.startswith(u.mountpoint.rstrip("/") + "/")]
    return sorted(holding, key=lambda u: len(u.mountpoint))[-1:]


def watched(usages: Iterable[MountUsage], settings: DiskSettings) -> list[MountUsage]:
    if not settings.watch_mounts:
        return list(usages)
    wanted = {m.rstrip("/") or "/" for m in settings.watch_mounts}
    return [u for u in usages if u.mountpoint in wanted or wanted.intersection(u.also_mounted_at)]


# --------------------------------------------------------------------------- sample history

class SampleStore:
    """`disk_samples`: (mount, ts, used, total) rows; raw, then hourly, then daily means."""

    def __init__(self, store):
        self.store = store

    async def start(self) -> None:
        await self.store.ensure_schema(SCHEMA)

    async def record(self, usages: Iterable[MountUsage], now: float) -> int:
        count = 0
        for usage in usages:
            if usage.available and usage.total > 0:
                await self.store.insert("INSERT INTO disk_samples(mount, ts, used, total) VALUES(?,?,?,?)",
                                        (usage.mountpoint, now, usage.used, usage.total))
                count += 1
        return count

    async def history(self, mount: str, since: float) -> list[Sample]:
        rows = await self.store.fetchall(
            "SELECT ts, used, total FROM disk_samples WHERE mount = ? AND ts >= ? ORDER BY ts",
            (mount, since))
        return [Sample(r["ts"], r["used"], r["total"]) for r in rows]

    async def compact(self, now: float, history_days: float) -> int:
        """Drop samples older than `history_days`, replace old ones by hourly/daily means.

        Works on whole UTC days only, so every mean covers a complete bucket, and never deletes a
        sample before its mean is written (a crash in between only leaves an extra sample).
        Returns the number of rows removed."""
        removed = await self.store.execute("DELETE FROM disk_samples WHERE ts < ?",
                                           (now - history_days * DAY,))
        day_start = math.floor(now / DAY) * DAY
        cutoff = day_start - RAW_DAYS * DAY
        mounts = [r["mount"] for r in await self.store.fetchall(
            "SELECT DISTINCT mount FROM disk_samples WHERE ts < ?", (cutoff,))]
        for mount in mounts:
            removed += await self._compact_mount(mount, cutoff, day_start)
        return removed

    async def _compact_mount(self, mount: str, cutoff: float, day_start: float) -> int:
        rows = await self.store.fetchall(
            "SELECT id, ts, used, total FROM disk_samples WHERE mount = ? AND ts < ? ORDER BY ts",
            (mount, cutoff))
        samples = [(r["id"], Sample(r["ts"], r["used"], r["total"])) for r in rows]
        kept = set(downsample([s for _, s in samples], day_start, raw_days=RAW_DAYS,
                              hourly_days=HOURLY_DAYS))
        present: set[Sample] = set()
        stale: list[int] = []
        for row_id, sample in samples:
            if sample in kept and sample not in present:
                present.add(sample)
            else:
                stale.append(row_id)          # averaged away, or a duplicate row
        if not stale:
            return 0
        for sample in sorted(kept - present):
            await self.store.insert("INSERT INTO disk_samples(mount, ts, used, total) VALUES(?,?,?,?)",
                                    (mount, sample.timestamp, sample.used, sample.total))
        for start in range(0, len(stale), 500):
            chunk = stale[start:start + 500]
            await self.store.execute(f"DELETE FROM disk_samples WHERE id IN ({','.join('?' * len(chunk))})",
                                     chunk)
        return len(stale)


# --------------------------------------------------------------------------- rules

def level(percent: float, warn: float, critical: float, hysteresis: float,
          active: str | None) -> str | None:
    """'critical', 'warning' or None for a usage percentage, given the alert already active.

    A level is entered at its threshold and left only `hysteresis` points below it, so a disk
    hovering around 85 % does not flap between alert and recovery."""
    if percent >= critical or (active == "critical" and percent >= critical - hysteresis):
        return "critical"
    if percent >= warn or (active is not None and percent >= warn - hysteresis):
        return "warning"
    return None


def forecast_bad(result: Trend, days: float, active: bool) -> bool:
    """Full within `days` at the current rate; an active alert clears only beyond 1.5 × days."""
    if days <= 0 or result.kind != "full" or result.days_until_full is None:
        return False
    return result.days_until_full <= (days * 1.5 if active else days)


def _space(usage: MountUsage) -> str:
    return f"{human_bytes(usage.free)} free of {human_bytes(usage.total)}"


def _todo(mount: str) -> str:
    return f"see what takes the space with !disk {mount}, then free some with !cleanup (a dry run first)"


@dataclass
class Finding:
    """One condition of one mount as the rules see it now: bad (severity) or good (severity None)."""
    key: str
    severity: str | None
    text: str
    todo: str = ""
    grow_mount: str | None = None    # a mount worth offering to grow (critical, or full soon)


async def apply_finding(bot: "Bot", finding: Finding, renotify: float, now: float | None = None) -> None:
    """Fire the alert of a bad finding, clear (recovery notice if it was active) a good one. When the
    mount is a Hetzner volume the alert also offers to grow it: an admin's ✅ starts the approval."""
    if finding.severity is None:
        await bot.alerts.clear(finding.key, finding.text, now=now)
        return
    text, offer = finding.text, None
    if finding.grow_mount and "hetzner" in (getattr(bot.config, "model_extra", None) or {}):
        from .cloud import grow_offer        # only bots with [hetzner] ever get an offer
        grow = await grow_offer(bot, finding.grow_mount)
        if grow is not None:
            price = grow.cost.text(signed=True) if grow.cost else "an unknown price"
            text += (f"\nIt is Hetzner volume “{grow.volume.name}” ({grow.volume.size_gb} GB): growing it to "
                     f"{grow.new_size_gb} GB costs {price}.")
            offer = grow.command
    await bot.alerts.fire(finding.key, finding.severity, text, finding.todo,
                          renotify=renotify, now=now, offer=offer)


class DiskWatch:
    """The sampler and the rules for one bot; `tick` is what the scheduler runs."""

    def __init__(self, bot: "Bot", settings: DiskSettings):
        self.bot = bot
        self.settings = settings
        self.samples = SampleStore(bot.store)
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

    async def check(self, usages: Iterable[MountUsage], now: float) -> list[Finding]:
        """Apply every rule to every mount and pass the findings to the alerts."""
        findings: list[Finding] = []
        for usage in usages:
            findings += await self.findings_for(usage, now)
        for finding in findings:
            await self._apply(finding, now)
        return findings

    async def findings_for(self, usage: MountUsage, now: float) -> list[Finding]:
        mount = usage.mountpoint
        unreadable = Finding(f"disk:{mount}:unreadable", None, f"{mount} answers again")
        if not usage.available:
            unreadable.severity = "warning"
            unreadable.text = f"{mount} does not answer: {usage.error or 'unknown error'}"
            unreadable.todo = ("check the disk or network share on the server; !disk shows the other "
                               "mounts meanwhile")
            return [unreadable]
        return [unreadable, await self._space(usage), await self._inodes(usage),
                await self._forecast(usage, now)]

    async def _active(self, key: str) -> str | None:
        state = await self.bot.alerts.state(key)
        return state.severity if state is not None and state.active else None

    async def _space(self, usage: MountUsage) -> Finding:
        mount, limits = usage.mountpoint, self.settings.limits(usage.mountpoint)
        key = f"disk:{mount}:usage"
        severity = level(usage.percent, limits.warn, limits.critical, self.settings.hysteresis,
                         await self._active(key))
        if severity is None:
            return Finding(key, None, f"{mount} is back to {usage.percent:.0f}% full ({_space(usage)})")
        almost = "almost full" if severity == "critical" else "filling up"
        return Finding(key, severity, f"{mount} is {almost}: {usage.percent:.0f}% used, {_space(usage)}",
                       _todo(mount), grow_mount=mount if severity == "critical" else None)

    async def _inodes(self, usage: MountUsage) -> Finding:
        mount, s = usage.mountpoint, self.settings
        key = f"disk:{mount}:inodes"
        percent = usage.inodes_percent or 0.0
        severity = level(percent, s.inode_warn_percent, s.inode_critical_percent, s.hysteresis,
                         await self._active(key))
        if severity is None:
            return Finding(key, None, f"{mount} has enough free inodes again ({percent:.0f}% used)")
        return Finding(key, severity, f"{mount} is running out of inodes (room for files): {percent:.0f}% "
                       f"used", f"many small files: find where with !disk {mount} (old caches, sessions, "
                       f"mail queues), then delete what is not needed")

    async def _forecast(self, usage: MountUsage, now: float) -> Finding:
        mount, days = usage.mountpoint, self.settings.limits(usage.mountpoint).forecast_days
        key = f"disk:{mount}:forecast"
        result = await self.trend_of(mount, now)
        if not forecast_bad(result, days, await self._active(key) is not None):
            return Finding(key, None, f"{mount} is no longer filling up fast ({result.text})")
        return Finding(key, "warning", f"{mount} will be {result.text} at the current rate "
                       f"(+{human_bytes(result.bytes_per_day)}/day, {usage.percent:.0f}% used now)",
                       _todo(mount), grow_mount=mount)

    async def _apply(self, finding: Finding, now: float) -> None:
        await apply_finding(self.bot, finding, self.settings.renotify, now)


_WATCHES: "weakref.WeakKeyDictionary[Any, DiskWatch]" = weakref.WeakKeyDictionary()


def watch_of(bot: "Bot") -> DiskWatch:
    if bot not in _WATCHES:
        _WATCHES[bot] = DiskWatch(bot, settings_of(bot))
    return _WATCHES[bot]


async def install(bot: "Bot") -> DiskWatch:
    """Startup: the samples table and the sampler, which runs once right away."""
    watch = watch_of(bot)
    await watch.start()
    bot.scheduler.add_job(watch.tick, "interval", seconds=watch.settings.sample_interval,
                          id="disk-sampler", name="disk sampler and alerts", replace_existing=True,
                          next_run_time=datetime.now(timezone.utc) + timedelta(seconds=1))
    return watch
