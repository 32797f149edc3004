"""What the clean-up steps are given (`CleanupParams`: paths, tools, limits) and what they report
(`Estimate` of a dry run, `StepResult` of a run, the `CleanupReport` of them all)."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from spbot.system.filetree import FileItem
from spbot.model import Model

StepName = Literal["nix", "journal", "logs", "apt", "old-root"]
_TOOL_VALUE = re.compile(r"^[0-9]+[A-Za-z]*$")


class CleanupParams(Model):
    """The `[cleanup]` settings; defaults describe a SelfPrivacy-like NixOS or Debian server."""
    enabled: list[StepName] | None = Field(
        None, examples=[["journal", "logs"]],
        description="Only these steps of nix, journal, logs, apt, old-root (unset: every step that applies here).")
    tool_path: str | None = Field(
        None,
        description="PATH to find the tools in (unset: the bot's).")
    timeout: float = Field(600.0, gt=0, description="Seconds one step may take.")
    nix_timeout: float = Field(3600.0, gt=0, description="Seconds the nix garbage collection may take.")
    nix_marker: Path = Field(Path("/etc/NIXOS"), description="Exists on NixOS (the nix step applies).")
    nix_store: Path = Field(Path("/nix/store"), description="The nix store whose size the nix step measures.")
    nix_delete_older_than: str | None = Field(
        None,
        description="Keep generations younger than this, e.g. \"7d\" (unset: delete all old generations).")
    journal_dir: Path = Field(Path("/var/log/journal"), description="The systemd journal's directory.")
    journal_vacuum_time: str | None = Field("7d", description="Keep journal entries younger than this.")
    journal_vacuum_size: str | None = Field("200M", description="Keep at most this much journal.")
    journal_rotate: bool = Field(
        False,
        description="Rotate the journal first (so the active files can be vacuumed too).")
    log_dirs: list[Path] = Field(
        default_factory=lambda: [Path("/var/log/nginx")],
        description="Directories whose rotated logs the logs step deletes.")
    log_patterns: list[str] = Field(
        default_factory=lambda: ["*.gz", "*.[0-9]", "*.[0-9].gz", "*.old"],
        description="Which files in those directories are rotated logs.")
    debian_marker: Path = Field(
        Path("/etc/debian_version"),
        description="Exists on Debian and Ubuntu (the apt step applies).")
    apt_archives: Path = Field(
        Path("/var/cache/apt/archives"),
        description="apt's cache of downloaded packages.")
    old_root: Path = Field(
        Path("/old-root"),
        description="What a NixOS install from another system leaves behind (deleted by the old-root step).")

    @field_validator("nix_delete_older_than", "journal_vacuum_time", "journal_vacuum_size")
    @classmethod
    def _tool_value(cls, value: str | None) -> str | None:
        if value is not None and not _TOOL_VALUE.match(value):
            raise ValueError("expected a number with an optional unit, such as 7d or 500M")
        return value

    @field_validator("log_dirs", "old_root", "apt_archives")
    @classmethod
    def _not_root(cls, value: Path | list[Path]) -> Path | list[Path]:
        for path in value if isinstance(value, list) else [value]:
            if not path.is_absolute() or os.path.normpath(path) == "/":
                raise ValueError(f"{path}: give an absolute directory other than /")
        return value


class Estimate(Model):
    """A dry run: what a step would free. `bytes` None when it cannot be known before running."""
    step: str
    title: str
    bytes: int | None
    exact: bool = False
    detail: str = ""
    files: list[FileItem] = Field(default_factory=list)
    error: str | None = None


class StepResult(Model):
    """A run: `freed_bytes` measured on the filesystem; `reported_bytes` what the tool said."""
    step: str
    title: str
    ok: bool
    freed_bytes: int = 0
    reported_bytes: int | None = None
    detail: str = ""
    files: list[FileItem] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    duration: float = 0.0


class CleanupReport(Model):
    results: list[StepResult]

    @property
    def freed_bytes(self) -> int:
        return sum(r.freed_bytes for r in self.results)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


# --------------------------------------------------------------------------- sizes

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTPE]?)(?:i?B)?\s*$", re.IGNORECASE)
_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


def parse_size(text: str) -> int:
    """'1.5G', '8.0M', '0B', '11.6 GiB', '12.34 MiB' → bytes (binary units, as journalctl and nix)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    return round(float(match.group(1)) * 1024 ** _POWERS[match.group(2).upper()])


# --------------------------------------------------------------------------- steps
