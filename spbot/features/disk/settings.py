"""[disk]: what !disk shows, what the sampler records and when it alerts (per-mount limits too)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ConfigDict, Field, field_validator, model_validator

from spbot.config import Duration, config_section
from spbot.system.disks import DiskParams
from spbot.model import Model

TREND_DAYS = 7.0


class MountLimits(Model):
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
