"""NixOS: nixos-rebuild (channels with --upgrade, or a flake), nix-env's system generations, the
rollback, and whether the booted kernel differs from the current system's."""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

from pydantic import Field

from spbot.system.osinfo import Family
from spbot.system.proc import ProcResult

from .errors import ActivationFailed, BuildFailed, UpgradeError
from .results import CheckResult, Generation, PendingUpdate, RebootStatus, UpgradeResult
from .tools import LineCallback, LineSink, ToolParams, output_lines, run_tool


class NixosParams(ToolParams):
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
    for line in output_lines(text):
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
        result = await run_tool([p.nix_env, "--list-generations", "-p", str(p.profile)],
                                "nix-env --list-generations", p.list_timeout, p.base_env())
        if result.returncode != 0:
            raise UpgradeError(f"cannot list system generations (exit code {result.returncode})",
                               output_lines(result.tail()))
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
        result = await run_tool([p.nixos_rebuild, "dry-build", *extra], "nixos-rebuild dry-build",
                                p.check_timeout, p.base_env(), sink)
        if result.returncode != 0:
            raise self._build_failure("checking for updates failed", result, sink)
        check = parse_dry_build(result.stdout + "\n" + result.stderr)
        return check.model_copy(update={"reboot": await self.reboot_status()})

    async def _flake_update(self, flake_dir: Path, on_line: LineCallback | None) -> None:
        p = self.params
        sink = self._sink(on_line)
        argv = [p.nix, "--extra-experimental-features", "nix-command flakes", "flake", "update"]
        result = await run_tool(argv, "nix flake update", p.check_timeout, p.base_env(), sink,
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
        result = await run_tool([p.nixos_rebuild, "switch", *extra], f"nixos-rebuild switch ({what})",
                                p.switch_timeout, p.base_env(), sink)
        after = await self.current_generation()
        if result.returncode != 0:
            raise self._switch_failure(what, result, sink, before, after)
        return UpgradeResult(family="nixos", generation_before=before, generation_after=after,
                             duration=time.monotonic() - started, reboot=await self.reboot_status(),
                             log_tail=list(sink.tail))

    def _switch_failure(self, what: str, result: ProcResult, sink: LineSink,
                        before: int | None, after: int | None) -> UpgradeError:
        if after is not None and after != before:
            return ActivationFailed(f"generation {after} was built and made current, but switching to "
                                    f"it reported errors (exit code {result.returncode})",
                                    list(sink.tail), generation=after)
        return self._build_failure(f"the {what} failed; the running system is unchanged", result, sink)

    def _build_failure(self, message: str, result: ProcResult, sink: LineSink) -> UpgradeError:
        lines = output_lines(result.stderr, self.params.max_line_length) or list(sink.tail)
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

    def _sink(self, on_line: LineCallback | None) -> LineSink:
        return LineSink(on_line, self.params.max_line_length, self.params.tail_lines)


def split_flake(ref: str) -> tuple[Path, str]:
    """'/etc/nixos#host' -> (Path('/etc/nixos'), 'host'); 'path:' prefixes are dropped."""
    location, _, attr = ref.partition("#")
    return Path(location.removeprefix("path:")), attr
