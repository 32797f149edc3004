"""What every clean-up step shares: a dry run and a run that report failures instead of raising, free
space measured before and after, and tools found on the configured PATH only."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Awaitable, ClassVar, TypeVar

from spbot.system import disks
from spbot.system.filetree import existing_parent, free_space, freed_between
from spbot.system.proc import ProcError, ProcResult, run

from .model import CleanupParams, Estimate, StepResult

T = TypeVar("T")


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
