"""What the upgrade drivers report: pending updates, package changes, generations, reboot status."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from spbot.system.osinfo import Family
from spbot.model import Model


class PendingUpdate(Model):
    name: str
    current: str | None = None
    new: str | None = None
    origin: str | None = None  # apt: "Debian-Security:12/stable-security"; nix: "build" / "download"
    security: bool = False


class AptSummary(Model):
    """apt's "N upgraded, M newly installed, K to remove and H not upgraded." line."""
    upgraded: int
    newly_installed: int
    removed: int
    not_upgraded: int


class RebootStatus(Model):
    required: bool = False
    reasons: list[str] = Field(default_factory=list)  # apt: packages; NixOS: "kernel", "initrd", ...


class CheckResult(Model):
    family: Family
    updates: list[PendingUpdate] = Field(default_factory=list)
    removals: list[str] = Field(default_factory=list)
    summary: AptSummary | None = None
    download: str | None = None  # NixOS: "30.51 MiB download, 150.22 MiB unpacked"
    warnings: list[str] = Field(default_factory=list)
    reboot: RebootStatus = Field(default_factory=RebootStatus)

    @property
    def pending(self) -> bool:
        return bool(self.updates or self.removals)

    @property
    def security_updates(self) -> list[PendingUpdate]:
        return [u for u in self.updates if u.security]


class PackageChange(Model):
    name: str
    action: Literal["upgraded", "installed", "removed"]
    old: str | None = None
    new: str | None = None


class UpgradeResult(Model):
    family: Family
    changes: list[PackageChange] = Field(default_factory=list)
    summary: AptSummary | None = None
    generation_before: int | None = None
    generation_after: int | None = None
    duration: float = 0.0
    reboot: RebootStatus = Field(default_factory=RebootStatus)
    log_tail: list[str] = Field(default_factory=list)

    @property
    def changed(self) -> bool:
        if self.generation_before is not None or self.generation_after is not None:
            return self.generation_before != self.generation_after
        return bool(self.changes) or bool(self.summary and (
            self.summary.upgraded or self.summary.newly_installed or self.summary.removed))


class Generation(Model):
    number: int
    created: datetime
    current: bool = False
    nixos_version: str | None = None
