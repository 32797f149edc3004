"""Disk clean-up steps that apply to this machine: nix GC, journal vacuum, rotated logs, apt cache, /old-root.

Each step can `estimate()` what it would free (a dry run that changes nothing) and `run()`;
a run reports the bytes freed as measured by the filesystem's free space before and after, plus
what the tool itself reported and, where files are deleted, each file with its size.

Paths and the PATH used to find tools come from `CleanupParams`, so tests point them at temporary
trees and recording executables. Deleting (spbot/system/filetree.py) walks directories by file
descriptor and never follows a symlink or leaves the filesystem of the configured directory.
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from pathlib import Path
from typing import Awaitable, Callable, ClassVar, Literal, TypeVar

from pydantic import BaseModel, Field, field_validator

from spbot.system import disks
from spbot.system.filetree import (FileItem, existing_parent, find_files, free_space, freed_between,
                                   remove_tree)
from spbot.system.proc import ProcError, ProcResult, run

T = TypeVar("T")
StepName = Literal["nix", "journal", "logs", "apt", "old-root"]
_TOOL_VALUE = re.compile(r"^[0-9]+[A-Za-z]*$")


class CleanupParams(BaseModel):
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


class Estimate(BaseModel):
    """A dry run: what a step would free. `bytes` None when it cannot be known before running."""
    step: str
    title: str
    bytes: int | None
    exact: bool = False
    detail: str = ""
    files: list[FileItem] = Field(default_factory=list)
    error: str | None = None


class StepResult(BaseModel):
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


class CleanupReport(BaseModel):
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

class CleanupStep:
    """One way of freeing space. Subclasses set name/title and write applies, _estimate, _run
    and measured_paths (where free space is measured before and after)."""
    name: ClassVar[str]
    title: ClassVar[str]

    def __init__(self, params: CleanupParams):
        self.params = params

    def applies(self) -> bool:
        raise NotImplementedError

    async def _estimate(self, estimate: Estimate) -> None:
        raise NotImplementedError

    async def _run(self, result: StepResult) -> None:
        raise NotImplementedError

    def measured_paths(self) -> list[Path]:
        raise NotImplementedError

    async def estimate(self) -> Estimate:
        """A dry run: nothing changes; failures are reported in `error`, never raised."""
        estimate = Estimate(step=self.name, title=self.title, bytes=None)
        try:
            await self._estimate(estimate)
        except (ProcError, OSError, disks.ProbeTimeout, ValueError) as exc:
            estimate.bytes, estimate.error = None, f"{self.title}: {exc}"
        return estimate

    async def run(self) -> StepResult:
        """Run the step; failures are reported in the result, never raised.

        Free space is measured after the step even when it failed half-way.
        """
        result = StepResult(step=self.name, title=self.title, ok=True)
        started = time.monotonic()
        paths = [existing_parent(p) for p in self.measured_paths()]
        before = await self._guard(result, free_space(paths))
        await self._guard(result, self._run(result))
        if before is not None and (after := await self._guard(result, free_space(paths))) is not None:
            result.freed_bytes = freed_between(before, after)
        result.ok = not result.errors
        result.duration = time.monotonic() - started
        return result

    async def _guard(self, result: StepResult, work: Awaitable[T]) -> T | None:
        try:
            return await work
        except (ProcError, OSError, disks.ProbeTimeout, ValueError) as exc:
            result.errors.append(f"{self.title}: {exc}")
            return None

    # tools ---------------------------------------------------------------

    def _search_path(self) -> str:
        return self.params.tool_path if self.params.tool_path is not None else os.environ.get("PATH", "")

    def tool(self, name: str) -> str | None:
        """Absolute path of a tool found on the configured PATH, or None."""
        return shutil.which(name, path=self._search_path())

    async def call(self, name: str, *args: str, timeout: float | None = None, **env: str) -> ProcResult:
        exe = self.tool(name)
        if exe is None:
            raise ProcError(f"{name} is not installed (not found on PATH)")
        environment = {**os.environ, "PATH": self._search_path(), "LC_ALL": "C", "LANG": "C", **env}
        return await run([exe, *args], timeout=timeout or self.params.timeout, env=environment, work="cleanup")


def _failure(name: str, result: ProcResult) -> str:
    if result.timed_out:
        return f"{name} did not finish within {result.duration:.0f}s and was stopped"
    return f"{name} failed (exit {result.returncode}): {result.tail(3)}"


class NixGarbage(CleanupStep):
    """nix-collect-garbage: delete old NixOS generations and unreachable store paths."""
    name = "nix"
    title = "old NixOS generations (nix-collect-garbage)"
    _DELETED = re.compile(r"(\d+) store paths deleted, ([\d.]+\s*[KMGTPE]?i?B) freed")
    _WOULD = re.compile(r"(\d+) store paths would be deleted")
    _GENERATION = re.compile(r"(?:would remove|removing) profile version (\d+)")

    def applies(self) -> bool:
        return self.params.nix_marker.exists() and self.tool("nix-collect-garbage") is not None

    def _args(self) -> list[str]:
        if self.params.nix_delete_older_than:
            return ["--delete-older-than", self.params.nix_delete_older_than]
        return ["-d"]

    def measured_paths(self) -> list[Path]:
        return [self.params.nix_store]

    async def _estimate(self, estimate: Estimate) -> None:
        result = await self.call("nix-collect-garbage", *self._args(), "--dry-run")
        if not result.ok:
            raise ProcError(_failure("nix-collect-garbage --dry-run", result))
        output = result.stdout + result.stderr
        generations = len(self._GENERATION.findall(output))
        paths = self._WOULD.search(output)
        estimate.detail = f"{generations} old generation(s) to remove" + (
            f", {paths.group(1)} store paths" if paths else "") + "; size known after the run"

    async def _run(self, result: StepResult) -> None:
        proc = await self.call("nix-collect-garbage", *self._args(), timeout=self.params.nix_timeout)
        if not proc.ok:
            result.errors.append(_failure("nix-collect-garbage", proc))
            return
        output = proc.stdout + proc.stderr
        generations = len(self._GENERATION.findall(output))
        if match := self._DELETED.search(output):
            result.reported_bytes = parse_size(match.group(2))
            result.detail = f"{generations} generation(s) and {match.group(1)} store paths removed"
        else:
            result.detail = f"{generations} generation(s) removed"


class JournalVacuum(CleanupStep):
    """journalctl --vacuum-time/--vacuum-size: drop archived systemd journal files."""
    name = "journal"
    title = "systemd journal (journalctl --vacuum)"
    _USAGE = re.compile(r"take up (\S+) (?:in the file system|on disk)")
    _FREED = re.compile(r"Vacuuming done, freed (\S+) of archived journals")
    _DELETED = re.compile(r"Deleted archived journal (\S+) \((\S+)\)\.")

    def applies(self) -> bool:
        return self.tool("journalctl") is not None

    def measured_paths(self) -> list[Path]:
        return [self.params.journal_dir]

    def _vacuum_args(self) -> list[str]:
        args = []
        if self.params.journal_vacuum_time:
            args.append(f"--vacuum-time={self.params.journal_vacuum_time}")
        if self.params.journal_vacuum_size:
            args.append(f"--vacuum-size={self.params.journal_vacuum_size}")
        return args

    def _limits(self) -> str:
        parts = []
        if self.params.journal_vacuum_size:
            parts.append(f"at most {self.params.journal_vacuum_size}")
        if self.params.journal_vacuum_time:
            parts.append(f"nothing older than {self.params.journal_vacuum_time}")
        return " and ".join(parts) or "everything"

    async def disk_usage(self) -> int:
        """Bytes the journals take up, from `journalctl --disk-usage`."""
        result = await self.call("journalctl", "--disk-usage")
        match = self._USAGE.search(result.stdout)
        if not result.ok or not match:
            raise ProcError(_failure("journalctl --disk-usage", result) if not result.ok
                            else f"journalctl --disk-usage: unexpected output: {result.tail(1)}")
        return parse_size(match.group(1))

    async def _estimate(self, estimate: Estimate) -> None:
        usage = await self.disk_usage()
        keep = parse_size(self.params.journal_vacuum_size) if self.params.journal_vacuum_size else 0
        estimate.bytes = max(0, usage - keep) if self.params.journal_vacuum_size else usage
        estimate.detail = (f"journals take up {disks.format_bytes(usage)}; the vacuum keeps "
                           f"{self._limits()} (active journals always stay)")

    async def _run(self, result: StepResult) -> None:
        if not self._vacuum_args():
            result.detail = "no vacuum limit configured"
            return
        if self.params.journal_rotate:
            rotated = await self.call("journalctl", "--rotate")
            if not rotated.ok:
                result.errors.append(_failure("journalctl --rotate", rotated))
                return
        proc = await self.call("journalctl", *self._vacuum_args())
        if not proc.ok:
            result.errors.append(_failure("journalctl --vacuum", proc))
            return
        output = proc.stderr + proc.stdout
        result.reported_bytes = sum(parse_size(s) for s in self._FREED.findall(output))
        result.files = [FileItem(path=p, bytes=parse_size(s)) for p, s in self._DELETED.findall(output)]
        result.detail = f"{len(result.files)} archived journal file(s) deleted; kept {self._limits()}"


class RotatedLogs(CleanupStep):
    """Old rotated logs (*.gz, *.1, ...) in the configured log directories."""
    name = "logs"
    title = "rotated logs"

    def applies(self) -> bool:
        return any(d.is_dir() for d in self.params.log_dirs)

    def measured_paths(self) -> list[Path]:
        return list(self.params.log_dirs)

    def _scan(self, delete: bool) -> tuple[list[FileItem], list[str]]:
        files: list[FileItem] = []
        errors: list[str] = []
        for directory in self.params.log_dirs:
            found, failed = find_files(directory, self.params.log_patterns, delete=delete)
            files += found
            errors += failed
        return files, errors

    async def _estimate(self, estimate: Estimate) -> None:
        files, errors = await disks.in_thread(self._scan, False, timeout=self.params.timeout)
        estimate.bytes, estimate.exact, estimate.files = sum(f.bytes for f in files), True, files
        estimate.error = "; ".join(errors) or None
        estimate.detail = (f"{len(files)} rotated log file(s) in "
                           + ", ".join(str(d) for d in self.params.log_dirs))

    async def _run(self, result: StepResult) -> None:
        files, errors = await disks.in_thread(self._scan, True, timeout=self.params.timeout)
        result.files = files
        result.errors += errors
        result.reported_bytes = sum(f.bytes for f in files)
        result.detail = f"{len(files)} rotated log file(s) deleted"


class AptCache(CleanupStep):
    """apt-get clean: downloaded .deb packages in /var/cache/apt/archives."""
    name = "apt"
    title = "package cache (apt-get clean)"

    def applies(self) -> bool:
        return self.params.debian_marker.exists() and self.tool("apt-get") is not None

    def measured_paths(self) -> list[Path]:
        return [self.params.apt_archives]

    def _packages(self) -> list[FileItem]:
        return find_files(self.params.apt_archives, ["*.deb"])[0]

    async def _estimate(self, estimate: Estimate) -> None:
        files = await disks.in_thread(self._packages, timeout=self.params.timeout)
        estimate.bytes, estimate.exact, estimate.files = sum(f.bytes for f in files), True, files
        estimate.detail = f"{len(files)} cached package(s) in {self.params.apt_archives}"

    async def _run(self, result: StepResult) -> None:
        before = await disks.in_thread(self._packages, timeout=self.params.timeout)
        proc = await self.call("apt-get", "clean", DEBIAN_FRONTEND="noninteractive")
        if not proc.ok:
            result.errors.append(_failure("apt-get clean", proc))
            return
        now = {f.path: f.bytes for f in await disks.in_thread(self._packages, timeout=self.params.timeout)}
        result.files = [FileItem(path=f.path, bytes=f.bytes - now.get(f.path, 0))
                        for f in before if now.get(f.path, 0) < f.bytes]
        result.reported_bytes = sum(f.bytes for f in result.files)
        result.detail = f"{len(result.files)} cached package(s) removed"


class OldRoot(CleanupStep):
    """The previous system kept in /old-root by the NixOS install (rm -rf, one filesystem)."""
    name = "old-root"
    title = "previous system (/old-root)"

    def applies(self) -> bool:
        path = self.params.old_root
        return path.is_dir() and not path.is_symlink()

    def measured_paths(self) -> list[Path]:
        return [self.params.old_root.parent]

    async def _estimate(self, estimate: Estimate) -> None:
        size = await disks.tree_size(str(self.params.old_root), time_budget=self.params.timeout)
        estimate.bytes, estimate.exact, estimate.error = size.total_bytes, not size.partial, size.error
        estimate.detail = (f"{self.params.old_root} holds {disks.format_bytes(size.total_bytes)}"
                           + (" (or more: the count was cut short)" if size.partial else ""))

    async def _run(self, result: StepResult) -> None:
        size = await disks.tree_size(str(self.params.old_root), time_budget=self.params.timeout)
        removed, skipped = await disks.in_thread(remove_tree, self.params.old_root,
                                                 timeout=self.params.timeout)
        result.reported_bytes = size.total_bytes
        result.detail = f"{removed} file(s) removed from {self.params.old_root}"
        if skipped:
            result.errors.append("left alone (other filesystems): " + ", ".join(skipped))


STEP_TYPES: tuple[type[CleanupStep], ...] = (NixGarbage, JournalVacuum, RotatedLogs, AptCache, OldRoot)


def steps(params: CleanupParams) -> list[CleanupStep]:
    """The enabled steps that apply to this machine, in the order they should run."""
    chosen = [cls(params) for cls in STEP_TYPES
              if params.enabled is None or cls.name in params.enabled]
    return [step for step in chosen if step.applies()]


async def dry_run(params: CleanupParams) -> list[Estimate]:
    """Estimates of every applicable step; nothing is changed."""
    return [await step.estimate() for step in steps(params)]


async def run_all(params: CleanupParams,
                  on_step: Callable[[CleanupStep], Awaitable[None] | None] | None = None) -> CleanupReport:
    """Run every applicable step in order; `on_step` is told before each one (for progress)."""
    results = []
    for step in steps(params):
        if on_step is not None:
            maybe = on_step(step)
            if asyncio.iscoroutine(maybe):
                await maybe
        results.append(await step.run())
    return CleanupReport(results=results)
