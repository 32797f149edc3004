"""Debian and Ubuntu: apt-get update, the simulated dist-upgrade (what is pending), the real one, and
Debian's reboot-required flag."""
from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from pydantic import Field

from spbot.system.osinfo import Family
from spbot.system.proc import ProcResult

from .errors import PackageManagerBusy, UpgradeError
from .results import AptSummary, CheckResult, PackageChange, PendingUpdate, RebootStatus, UpgradeResult
from .tools import LineCallback, LineSink, ToolParams, output_lines, run_tool

BUSY_MESSAGE = "another package manager is running; try again later"


class AptParams(ToolParams):
    apt_get: str = Field("apt-get", description="The apt-get program.")
    dpkg: str = Field("dpkg", description="The dpkg program (finishes an installation a crash interrupted).")
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


_INST = re.compile(r"^Inst (\S+)(?: \[([^\]]*)\])? \((\S+)(?: (.*?))? \[[^\]]*\]\)")
_REMV = re.compile(r"^Remv (\S+)")
_SUMMARY = re.compile(r"^(\d+) upgraded, (\d+) newly installed, (\d+) to remove and (\d+) not upgraded")
_UNPACK = re.compile(r"^Unpacking (\S+) \(([^)]*)\)(?: over \(([^)]*)\))?")
_REMOVING = re.compile(r"^Removing (\S+) \(([^)]*)\)")
_LOCK_HOLDER = re.compile(r"held by process (\d+) \(([^)]*)\)")
INTERRUPTED = "dpkg was interrupted"
_LOCK_SIGNS = ("Could not get lock", "Unable to acquire the dpkg frontend lock",
               "Unable to lock the administration directory", "Unable to lock directory")


def parse_simulation(text: str) -> CheckResult:
    """Parse `apt-get -s dist-upgrade` output: Inst/Remv lines and the summary line."""
    result = CheckResult(family="debian")
    for line in output_lines(text):
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
    for line in output_lines(text):
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
    lines = output_lines(result.stdout + "\n" + result.stderr)
    text = "\n".join(lines)
    if any(sign in text for sign in _LOCK_SIGNS):
        holder = _LOCK_HOLDER.search(text)
        detail = f" (held by {holder[2]}, pid {holder[1]})" if holder else ""
        return PackageManagerBusy(BUSY_MESSAGE + detail, tail)
    if INTERRUPTED in text:
        return UpgradeError("an earlier package installation was interrupted; !upgrade finishes it "
                            "(dpkg --configure -a) before it upgrades", tail)
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
        result = await run_tool(self.argv("update"), "apt-get update", self.params.update_timeout,
                                self.env(), sink)
        if result.returncode != 0:
            raise apt_failure("apt-get update", result, list(sink.tail))
        return [line[3:] for line in output_lines(result.stdout + "\n" + result.stderr) if line.startswith("W: ")]

    async def check(self, refresh: bool = True, on_line: LineCallback | None = None) -> CheckResult:
        """What an upgrade would do: `apt-get update` (if `refresh`), then `apt-get -s dist-upgrade`."""
        warnings = await self.refresh(on_line) if refresh else []
        sink = self._sink(None)
        result = await run_tool(self.argv("-s", "dist-upgrade"), "apt-get -s dist-upgrade",
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
        result = await self._dist_upgrade(sink)
        if result.returncode != 0 and INTERRUPTED in result.stdout + result.stderr:
            await self._finish_interrupted(sink)       # e.g. the bot or the server stopped mid-upgrade
            result = await self._dist_upgrade(sink)
        if result.returncode != 0:
            raise apt_failure("apt-get dist-upgrade", result, list(sink.tail))
        changes, summary = parse_upgrade_log(result.stdout)
        return UpgradeResult(family=self.family, changes=changes, summary=summary,
                             duration=time.monotonic() - started, reboot=await self.reboot_status(),
                             log_tail=list(sink.tail))

    async def _dist_upgrade(self, sink: LineSink) -> ProcResult:
        return await run_tool(self.upgrade_argv(), "apt-get dist-upgrade", self.params.upgrade_timeout,
                              self.env(), sink)

    async def _finish_interrupted(self, sink: LineSink) -> None:
        """`dpkg --configure -a`, keeping changed config files, as apt asks after an interrupted run."""
        await sink("finishing an earlier installation that was interrupted: dpkg --configure -a")
        argv = [self.params.dpkg, "--force-confdef", "--force-confold", "--configure", "-a"]
        result = await run_tool(argv, "dpkg --configure -a", self.params.upgrade_timeout, self.env(), sink)
        if result.returncode != 0:
            errors = [line for line in output_lines(result.stderr) if line.strip()]
            raise UpgradeError("an earlier package installation was interrupted, and finishing it "
                               f"(dpkg --configure -a) failed (exit code {result.returncode})"
                               + (f": {errors[-1]}" if errors else ""), list(sink.tail))

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

    def _sink(self, on_line: LineCallback | None) -> LineSink:
        return LineSink(on_line, self.params.max_line_length, self.params.tail_lines)
