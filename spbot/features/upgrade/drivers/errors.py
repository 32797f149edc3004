"""The upgrade drivers' failures: every message is safe to show in chat, `tail` holds the last log lines."""
from __future__ import annotations


class UpgradeError(Exception):
    """An upgrade step failed; the message is safe to show, `tail` holds the last log lines."""

    def __init__(self, message: str, tail: list[str] | None = None):
        super().__init__(message)
        self.tail = tail or []


class PackageManagerBusy(UpgradeError):
    """dpkg/apt is locked by another process (unattended-upgrades, a human with apt)."""


class BuildFailed(UpgradeError):
    """The new NixOS system did not evaluate or build; the running system is unchanged."""


class ActivationFailed(UpgradeError):
    """The new system was built and made current, but switching to it reported errors."""

    def __init__(self, message: str, tail: list[str] | None = None, generation: int | None = None):
        super().__init__(message, tail)
        self.generation = generation


class UnsupportedSystem(UpgradeError):
    """No upgrade driver for this operating system."""
