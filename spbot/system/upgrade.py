"""System upgrades: apt on Debian/Ubuntu, nixos-rebuild on NixOS, and the reboot.

A driver checks what is pending, upgrades while streaming the tool's output line by line (ANSI
escapes removed, length bounded) to a callback, and says whether a reboot is needed. Tool names and
paths come from a small params object so tests can point them at recording fakes. Every failure is
an `UpgradeError` whose message is safe to show in chat and whose `tail` holds the last log lines.

Note for callers: the callback is awaited between lines, so keep it quick (buffer and edit the chat
message on a timer); an exception in it is logged and ignored, never allowed to stop the upgrade.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import os
import re
import shutil
import tempfile
import time
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Awaitable, Callable, Literal

from pydantic import BaseModel, Field

from spbot.system.osinfo import Family, OsInfo
from spbot.system.proc import ProcError, ProcResult, run

log = logging.getLogger(__name__)

LineCallback = Callable[[str], Awaitable[None] | None]

BUSY_MESSAGE = "another package manager is running; try again later"


# -- results ----------------------------------------------------------------------------------

class PendingUpdate(BaseModel):
    name: str
    current: str | None = None
    new: str | None = None
    origin: str | None = None  # apt: "Debian-Security:12/stable-security"; nix: "build" / "download"
    security: bool = False


class AptSummary(BaseModel):
    """apt's "N upgraded, M newly installed, K to remove and H not upgraded." line."""
    upgraded: int
    newly_installed: int
    removed: int
    not_upgraded: int


class RebootStatus(BaseModel):
    required: bool = False
    reasons: list[str] = Field(default_factory=list)  # apt: packages; NixOS: "kernel", "initrd", ...


class CheckResult(BaseModel):
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


class PackageChange(BaseModel):
    name: str
    action: Literal["upgraded", "installed", "removed"]
    old: str | None = None
    new: str | None = None


class UpgradeResult(BaseModel):
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


class Generation(BaseModel):
    number: int
    created: datetime
    current: bool = False
    nixos_version: str | None = None


# -- errors -----------------------------------------------------------------------------------

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


# -- params -----------------------------------------------------------------------------------

class _ToolParams(BaseModel):
    env: dict[str, str] | None = Field(None, description="The tools' environment (unset: the bot's own).")
    max_line_length: int = Field(500, description="Longer output lines are cut (with …) in the live log.")
    tail_lines: int = Field(20, description="How many of the last output lines a failure report shows.")

    def base_env(self) -> dict[str, str]:
        return dict(self.env if self.env is not None else os.environ)


class AptParams(_ToolParams):
    apt_get: str = Field("apt-get", description="The apt-get program.")
    reboot_required_file: Path = Field(
        Path("/run/reboot-required"),
        description="The file Debian creates when a reboot is needed.")
    reboot_required_pkgs: Path = Field(
        Path("/run/reboot-required.pkgs"),
        description="The file that names the packages that need the reboot.")
    lock_wait: int = Field(
        0,
        description="Seconds apt-get may wait for the dpkg lock before giving up; 0: do not wait.")
    update_timeout: float = Field(900.0, description="Seconds apt-get update may take.")
    simulate_timeout: float = Field(
        300.0,
        description="Seconds the simulated upgrade (what would change) may take.")
    upgrade_timeout: float = Field(4 * 3600.0, description="Seconds the upgrade itself may take.")


class NixosParams(_ToolParams):
    nixos_rebuild: str = Field("nixos-rebuild", description="The nixos-rebuild program.")
    nix_env: str = Field("nix-env", description="The nix-env program (lists and rolls back generations).")
    nix: str = Field("nix", description="The nix program (flake updates).")
    profile: Path = Field(
        Path("/nix/var/nix/profiles/system"),
        description="The system profile whose generations !generations lists.")
    flake: str | None = Field(
        None,
        description="The flake to build, e.g. \"/etc/nixos#myhost\"; unset: channels (nixos-rebuild --upgrade).")
    update_flake: bool = Field(True, description="With a flake: run nix flake update before upgrading.")
    booted_system: Path = Field(
        Path("/run/booted-system"),
        description="The system the machine booted (a reboot is needed when it differs).")
    current_system: Path = Field(Path("/run/current-system"), description="The system now active.")
    boot_files: tuple[str, ...] = Field(
        ("kernel", "initrd", "kernel-modules"),
        description="What differs between booted and current system when a reboot is needed.")
    list_timeout: float = Field(60.0, description="Seconds listing generations may take.")
    check_timeout: float = Field(3600.0, description="Seconds the check (a dry build) may take.")
    switch_timeout: float = Field(4 * 3600.0, description="Seconds the upgrade (switch) may take.")


class RebootParams(_ToolParams):
    systemctl: str = Field("systemctl", description="The systemctl program (systemctl reboot).")
    timeout: float = Field(60.0, description="Seconds systemctl reboot may take to answer.")


# -- output lines -----------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_line(raw: str, limit: int = 500) -> str:
    """One output line as it would finally look on a terminal: no ANSI, no \\r overdraw, bounded."""
    text = _ANSI.sub("", raw.rstrip("\n"))
    segments = [s for s in text.split("\r") if s.strip()]
    text = _CONTROL.sub("", segments[-1] if segments else "").rstrip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _LineSink:
    """Cleans each output line, keeps the last few, and hands it to the caller's callback."""

    def __init__(self, on_line: LineCallback | None, limit: int, tail_lines: int):
        self.on_line = on_line
        self.limit = limit
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self._callback_failed = False

    async def __call__(self, raw: str) -> None:
        line = clean_line(raw, self.limit)
        if not line:
            return
        self.tail.append(line)
        if self.on_line is None:
            return
        try:
            result = self.on_line(line)
            if inspect.isawaitable(result):
                await result
        except Exception:  # the upgrade must go on whatever the chat side does
            if not self._callback_failed:
                log.exception("output line callback failed; continuing without it")
            self._callback_failed = True


async def _run_tool(argv: list[str], what: str, timeout: float, env: dict[str, str],
                    sink: _LineSink | None = None, cwd: str | Path | None = None) -> ProcResult:
    """Run one tool; a missing tool or a timeout becomes an UpgradeError. The package managers write
    system files everyone reads: they run with the usual umask 022, not the bot's private 077."""
    try:
        result = await run(argv, timeout=timeout, env=env, cwd=cwd,
                           on_stdout_line=sink, on_stderr_line=sink, umask=0o022)
    except ProcError as exc:
        raise UpgradeError(f"{what}: {exc}") from exc
    if result.timed_out:
        tail = list(sink.tail) if sink else _lines(result.tail(20))
        raise UpgradeError(f"{what} did not finish within {timeout:.0f} s and was stopped", tail)
    return result


def _lines(text: str, limit: int = 500) -> list[str]:
    return [line for line in (clean_line(raw, limit) for raw in text.splitlines()) if line]


# -- apt (Debian, Ubuntu) ---------------------------------------------------------------------

_INST = re.compile(r"^Inst (\S+)(?: \[([^\]]*)\])? \((\S+)(?: (.*?))? \[[^\]]*\]\)")
_REMV = re.compile(r"^Remv (\S+)")
_SUMMARY = re.compile(r"^(\d+) upgraded, (\d+) newly installed, (\d+) to remove and (\d+) not upgraded")
_UNPACK = re.compile(r"^Unpacking (\S+) \(([^)]*)\)(?: over \(([^)]*)\))?")
_REMOVING = re.compile(r"^Removing (\S+) \(([^)]*)\)")
_LOCK_HOLDER = re.compile(r"held by process (\d+) \(([^)]*)\)")
_LOCK_SIGNS = ("Could not get lock", "Unable to acquire the dpkg frontend lock",
               "Unable to lock the administration directory", "Unable to lock directory")


def parse_simulation(text: str) -> CheckResult:
    """Parse `apt-get -s dist-upgrade` output: Inst/Remv lines and the summary line."""
    result = CheckResult(family="debian")
    for line in _lines(text):
        if match := _INST.match(line):
            origin = match[4] or None
            result.updates.append(PendingUpdate(
                name=match[1], current=match[2] or None, new=match[3], origin=origin,
                security="security" in (origin or "").lower()))
        elif match := _REMV.match(line):
            result.removals.append(match[1])
        elif match := _SUMMARY.match(line):
            result.summary = _summary(match)
    return result


def parse_upgrade_log(text: str) -> tuple[list[PackageChange], AptSummary | None]:
    """Package changes from dpkg's Unpacking/Removing lines, and apt's summary line."""
    changes: dict[str, PackageChange] = {}
    summary = None
    for line in _lines(text):
        if match := _UNPACK.match(line):
            name = _without_arch(match[1])
            action = "upgraded" if match[3] else "installed"
            changes[name] = PackageChange(name=name, action=action, old=match[3], new=match[2])
        elif match := _REMOVING.match(line):
            name = _without_arch(match[1])
            changes.setdefault(name, PackageChange(name=name, action="removed", old=match[2]))
        elif match := _SUMMARY.match(line):
            summary = _summary(match)
    return list(changes.values()), summary


def _summary(match: re.Match) -> AptSummary:
    upgraded, installed, removed, kept = (int(g) for g in match.groups())
    return AptSummary(upgraded=upgraded, newly_installed=installed, removed=removed, not_upgraded=kept)


def _without_arch(name: str) -> str:
    return name.split(":", 1)[0]


def apt_failure(what: str, result: ProcResult, tail: list[str]) -> UpgradeError:
    """Turn a failed apt-get run into the most specific error its output allows."""
    lines = _lines(result.stdout + "\n" + result.stderr)
    text = "\n".join(lines)
    if any(sign in text for sign in _LOCK_SIGNS):
        holder = _LOCK_HOLDER.search(text)
        detail = f" (held by {holder[2]}, pid {holder[1]})" if holder else ""
        return PackageManagerBusy(BUSY_MESSAGE + detail, tail)
    if "dpkg was interrupted" in text:
        return UpgradeError("an earlier package installation was interrupted; run "
                            "`dpkg --configure -a` as root, then try again", tail)
    errors = [line[3:] for line in lines if line.startswith("E: ")]
    detail = f": {errors[-1]}" if errors else ""
    return UpgradeError(f"{what} failed (exit code {result.returncode}){detail}", tail)


class AptDriver:
    """Debian and Ubuntu: apt-get update, simulated dist-upgrade, real dist-upgrade."""

    supports_rollback = False

    def __init__(self, params: AptParams | None = None, family: Family = "debian"):
        self.params = params or AptParams()
        self.family: Family = family

    def env(self) -> dict[str, str]:
        return {**self.params.base_env(), "DEBIAN_FRONTEND": "noninteractive",
                "APT_LISTCHANGES_FRONTEND": "none", "LC_ALL": "C.UTF-8"}

    def argv(self, *args: str) -> list[str]:
        lock = ["-o", f"DPkg::Lock::Timeout={self.params.lock_wait}"] if self.params.lock_wait else []
        return [self.params.apt_get, *lock, *args]

    def upgrade_argv(self) -> list[str]:
        return self.argv("-y", "-o", "Dpkg::Options::=--force-confdef",
                         "-o", "Dpkg::Options::=--force-confold", "dist-upgrade")

    async def refresh(self, on_line: LineCallback | None = None) -> list[str]:
        """apt-get update; returns apt's warnings (W: lines), e.g. a mirror that could not be reached."""
        sink = self._sink(on_line)
        result = await _run_tool(self.argv("update"), "apt-get update", self.params.update_timeout,
                                 self.env(), sink)
        if result.returncode != 0:
            raise apt_failure("apt-get update", result, list(sink.tail))
        return [line[3:] for line in _lines(result.stdout + "\n" + result.stderr) if line.startswith("W: ")]

    async def check(self, refresh: bool = True, on_line: LineCallback | None = None) -> CheckResult:
        """What an upgrade would do: `apt-get update` (if `refresh`), then `apt-get -s dist-upgrade`."""
        warnings = await self.refresh(on_line) if refresh else []
        sink = self._sink(None)
        result = await _run_tool(self.argv("-s", "dist-upgrade"), "apt-get -s dist-upgrade",
                                 self.params.simulate_timeout, self.env(), sink)
        if result.returncode != 0:
            raise apt_failure("apt-get -s dist-upgrade", result, list(sink.tail))
        check = parse_simulation(result.stdout)
        return check.model_copy(update={"family": self.family, "warnings": warnings,
                                        "reboot": await self.reboot_status()})

    async def upgrade(self, on_line: LineCallback | None = None, refresh: bool = True) -> UpgradeResult:
        """apt-get update (if `refresh`), then a non-interactive dist-upgrade keeping changed config files."""
        started = time.monotonic()
        if refresh:
            await self.refresh(on_line)
        sink = self._sink(on_line)
        result = await _run_tool(self.upgrade_argv(), "apt-get dist-upgrade",
                                 self.params.upgrade_timeout, self.env(), sink)
        if result.returncode != 0:
            raise apt_failure("apt-get dist-upgrade", result, list(sink.tail))
        changes, summary = parse_upgrade_log(result.stdout)
        return UpgradeResult(family=self.family, changes=changes, summary=summary,
                             duration=time.monotonic() - started, reboot=await self.reboot_status(),
                             log_tail=list(sink.tail))

    async def reboot_status(self) -> RebootStatus:
        """Debian's flag file /run/reboot-required and the packages listed in its .pkgs companion."""
        return await asyncio.to_thread(self._reboot_status)

    def _reboot_status(self) -> RebootStatus:
        if not self.params.reboot_required_file.exists():
            return RebootStatus()
        try:
            names = self.params.reboot_required_pkgs.read_text(errors="replace").split()
        except OSError:
            names = []
        return RebootStatus(required=True, reasons=list(dict.fromkeys(names)))

    def _sink(self, on_line: LineCallback | None) -> _LineSink:
        return _LineSink(on_line, self.params.max_line_length, self.params.tail_lines)


# -- NixOS ------------------------------------------------------------------------------------

_GENERATION = re.compile(r"^\s*(\d+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s*(\(current\))?\s*$")
_MISSING_HEADER = re.compile(r"^(?:these|this) (?:\d+ )?(derivations?|paths?) will be (built|fetched)"
                             r"(?: \(([^)]*)\))?:?$")
_STORE_PATH = re.compile(r"^/nix/store/[0-9a-z]{32}-(.+?)(?:\.drv)?$")
_STORE_PATH_IN_TEXT = re.compile(r"/nix/store/[0-9a-z]{32}-([^'\s]+?)(?:\.drv)?(?=['\s]|$)")


def parse_generations(text: str) -> list[Generation]:
    """Parse `nix-env --list-generations` lines like '  42   2024-11-02 10:00:00   (current)'."""
    generations = []
    for line in text.splitlines():
        if match := _GENERATION.match(line):
            generations.append(Generation(number=int(match[1]), current=bool(match[3]),
                                          created=datetime.strptime(match[2], "%Y-%m-%d %H:%M:%S")))
    return generations


def parse_dry_build(text: str) -> CheckResult:
    """Parse nix's "these N derivations will be built:" / "these N paths will be fetched (...):" lists."""
    result = CheckResult(family="nixos")
    origin = None
    for line in _lines(text):
        if match := _MISSING_HEADER.match(line):
            origin = "build" if match[2] == "built" else "download"
            if match[3]:
                result.download = match[3]
        elif origin and line.startswith("  ") and (path := _STORE_PATH.match(line.strip())):
            result.updates.append(PendingUpdate(name=path[1], origin=origin))
        else:
            origin = None
    return result


def nix_error_block(lines: list[str], limit: int = 20) -> list[str]:
    """From the first line starting with 'error:' on, at most `limit` lines."""
    for index, line in enumerate(lines):
        if line.lstrip().startswith("error:"):
            return lines[index : index + limit]
    return []


def _short_error(line: str) -> str:
    """'error: builder for '/nix/store/…-foo-1.0.drv' failed…' -> "builder for 'foo-1.0' failed…"."""
    text = line.strip().removeprefix("error:").strip()
    return _STORE_PATH_IN_TEXT.sub(lambda m: m[1], text)[:300]


class NixosDriver:
    """NixOS: nixos-rebuild switch (channels with --upgrade, or a flake), generations, rollback."""

    supports_rollback = True

    def __init__(self, params: NixosParams | None = None):
        self.params = params or NixosParams()
        self.family: Family = "nixos"

    # generations

    async def generations(self) -> list[Generation]:
        """All system generations, oldest first, with the NixOS version each one runs."""
        p = self.params
        result = await _run_tool([p.nix_env, "--list-generations", "-p", str(p.profile)],
                                 "nix-env --list-generations", p.list_timeout, p.base_env())
        if result.returncode != 0:
            raise UpgradeError(f"cannot list system generations (exit code {result.returncode})",
                               _lines(result.tail()))
        generations = parse_generations(result.stdout)
        return await asyncio.to_thread(self._with_versions, generations)

    async def current_generation(self) -> int | None:
        return next((g.number for g in await self.generations() if g.current), None)

    def _with_versions(self, generations: list[Generation]) -> list[Generation]:
        profile = self.params.profile
        for generation in generations:
            version_file = profile.with_name(f"{profile.name}-{generation.number}-link") / "nixos-version"
            try:
                generation.nixos_version = version_file.read_text().strip() or None
            except OSError:
                pass
        return generations

    # check

    async def check(self, refresh: bool = True, on_line: LineCallback | None = None) -> CheckResult:
        """`nixos-rebuild dry-build`: what would be built or downloaded.

        With channels and `refresh`, `--upgrade` updates the channels first (like apt-get update).
        With a local flake and `update_flake`, the inputs are updated in a temporary copy of the
        flake directory, so the real flake.lock is left alone.
        """
        p = self.params
        if p.flake is None:
            return await self._dry_build(["--upgrade"] if refresh else [], on_line)
        flake_dir, attr = split_flake(p.flake)
        if not (refresh and p.update_flake and flake_dir.is_dir()):
            return await self._dry_build(["--flake", p.flake], on_line)
        with tempfile.TemporaryDirectory(prefix="spbot-flake-") as tmp:
            copy = Path(tmp) / "flake"
            await asyncio.to_thread(shutil.copytree, flake_dir, copy, symlinks=True)
            await self._flake_update(copy, on_line)
            return await self._dry_build(["--flake", f"{copy}#{attr}" if attr else str(copy)], on_line)

    async def _dry_build(self, extra: list[str], on_line: LineCallback | None) -> CheckResult:
        p = self.params
        sink = self._sink(on_line)
        result = await _run_tool([p.nixos_rebuild, "dry-build", *extra], "nixos-rebuild dry-build",
                                 p.check_timeout, p.base_env(), sink)
        if result.returncode != 0:
            raise self._build_failure("checking for updates failed", result, sink)
        check = parse_dry_build(result.stdout + "\n" + result.stderr)
        return check.model_copy(update={"reboot": await self.reboot_status()})

    async def _flake_update(self, flake_dir: Path, on_line: LineCallback | None) -> None:
        p = self.params
        sink = self._sink(on_line)
        argv = [p.nix, "--extra-experimental-features", "nix-command flakes", "flake", "update"]
        result = await _run_tool(argv, "nix flake update", p.check_timeout, p.base_env(), sink,
                                 cwd=flake_dir)
        if result.returncode != 0:
            raise self._build_failure("updating the flake inputs failed", result, sink)

    # switch, rollback

    async def upgrade(self, on_line: LineCallback | None = None) -> UpgradeResult:
        """Build and switch to the newest system: channels with --upgrade, or the flake (inputs updated)."""
        p = self.params
        if p.flake is None:
            return await self._switch(["--upgrade"], on_line, "upgrade")
        flake_dir, _ = split_flake(p.flake)
        if p.update_flake and flake_dir.is_dir():
            await self._flake_update(flake_dir, on_line)
        return await self._switch(["--flake", p.flake], on_line, "upgrade")

    async def rollback(self, on_line: LineCallback | None = None) -> UpgradeResult:
        """Switch back to the previous generation (`nixos-rebuild switch --rollback`)."""
        return await self._switch(["--rollback"], on_line, "rollback")

    async def _switch(self, extra: list[str], on_line: LineCallback | None, what: str) -> UpgradeResult:
        p = self.params
        started = time.monotonic()
        before = await self.current_generation()
        sink = self._sink(on_line)
        result = await _run_tool([p.nixos_rebuild, "switch", *extra], f"nixos-rebuild switch ({what})",
                                 p.switch_timeout, p.base_env(), sink)
        after = await self.current_generation()
        if result.returncode != 0:
            raise self._switch_failure(what, result, sink, before, after)
        return UpgradeResult(family="nixos", generation_before=before, generation_after=after,
                             duration=time.monotonic() - started, reboot=await self.reboot_status(),
                             log_tail=list(sink.tail))

    def _switch_failure(self, what: str, result: ProcResult, sink: _LineSink,
                        before: int | None, after: int | None) -> UpgradeError:
        if after is not None and after != before:
            return ActivationFailed(f"generation {after} was built and made current, but switching to "
                                    f"it reported errors (exit code {result.returncode})",
                                    list(sink.tail), generation=after)
        return self._build_failure(f"the {what} failed; the running system is unchanged", result, sink)

    def _build_failure(self, message: str, result: ProcResult, sink: _LineSink) -> UpgradeError:
        lines = _lines(result.stderr, self.params.max_line_length) or list(sink.tail)
        block = nix_error_block(lines, self.params.tail_lines)
        if block:
            return BuildFailed(f"{message}: {_short_error(block[0])}", block)
        return UpgradeError(f"{message} (exit code {result.returncode})", list(sink.tail))

    # reboot

    async def reboot_status(self) -> RebootStatus:
        """Reboot needed when the booted kernel, initrd or modules differ from the current system's."""
        return await asyncio.to_thread(self._reboot_status)

    def _reboot_status(self) -> RebootStatus:
        p = self.params
        reasons = []
        for name in p.boot_files:
            booted, current = p.booted_system / name, p.current_system / name
            if booted.exists() and current.exists() and os.path.realpath(booted) != os.path.realpath(current):
                reasons.append(name)
        return RebootStatus(required=bool(reasons), reasons=reasons)

    def _sink(self, on_line: LineCallback | None) -> _LineSink:
        return _LineSink(on_line, self.params.max_line_length, self.params.tail_lines)


def split_flake(ref: str) -> tuple[Path, str]:
    """'/etc/nixos#host' -> (Path('/etc/nixos'), 'host'); 'path:' prefixes are dropped."""
    location, _, attr = ref.partition("#")
    return Path(location.removeprefix("path:")), attr


# -- choosing a driver, rebooting -------------------------------------------------------------

def driver_for(os_info: OsInfo, apt: AptParams | None = None,
               nixos: NixosParams | None = None) -> AptDriver | NixosDriver:
    """The upgrade driver for this OS; UnsupportedSystem for anything but Debian, Ubuntu and NixOS."""
    if os_info.family in ("debian", "ubuntu"):
        return AptDriver(apt, family=os_info.family)
    if os_info.family == "nixos":
        return NixosDriver(nixos)
    raise UnsupportedSystem(f"system upgrades are not supported on {os_info.pretty_name or 'this system'}"
                            " (only Debian, Ubuntu and NixOS)")


async def reboot(params: RebootParams | None = None) -> None:
    """`systemctl reboot`. The bot goes down with the machine: say so in chat before calling this."""
    p = params or RebootParams()
    result = await _run_tool([p.systemctl, "reboot"], "systemctl reboot", p.timeout, p.base_env())
    if result.returncode != 0:
        raise UpgradeError(f"reboot was refused (exit code {result.returncode})", _lines(result.tail()))
