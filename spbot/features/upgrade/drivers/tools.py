"""Running a package tool: a child process without a shell, its output lines cleaned (ANSI escapes and
\\r overdraw removed, length bounded), kept as a tail for failure reports and handed to the caller's
callback; a missing tool or a timeout is an UpgradeError.

Note for callers: the callback is awaited between lines, so keep it quick (buffer and edit the chat
message on a timer); an exception in it is logged and ignored, never allowed to stop the upgrade.
"""
from __future__ import annotations

import inspect
import logging
import os
import re
from collections import deque
from pathlib import Path
from typing import Awaitable, Callable

from pydantic import Field

from spbot.system.proc import ProcError, ProcResult, run

from .errors import UpgradeError
from spbot.model import Model

log = logging.getLogger(__name__)

LineCallback = Callable[[str], Awaitable[None] | None]


class ToolParams(Model):
    env: dict[str, str] | None = Field(None, description="The tools' environment (unset: the bot's own).")
    max_line_length: int = Field(500, description="Longer output lines are cut (with …) in the live log.")
    tail_lines: int = Field(20, description="How many of the last output lines a failure report shows.")

    def base_env(self) -> dict[str, str]:
        return dict(self.env if self.env is not None else os.environ)


_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_line(raw: str, limit: int = 500) -> str:
    """One output line as it would finally look on a terminal: no ANSI, no \\r overdraw, bounded."""
    text = _ANSI.sub("", raw.rstrip("\n"))
    segments = [s for s in text.split("\r") if s.strip()]
    text = _CONTROL.sub("", segments[-1] if segments else "").rstrip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class LineSink:
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


async def run_tool(argv: list[str], what: str, timeout: float, env: dict[str, str],
                   sink: LineSink | None = None, cwd: str | Path | None = None) -> ProcResult:
    """Run one tool; a missing tool or a timeout becomes an UpgradeError. The package managers write
    system files everyone reads: they run with the usual umask 022, not the bot's private 077."""
    try:
        result = await run(argv, timeout=timeout, env=env, cwd=cwd,
                           on_stdout_line=sink, on_stderr_line=sink, umask=0o022, work="upgrade")
    except ProcError as exc:
        raise UpgradeError(f"{what}: {exc}") from exc
    if result.timed_out:
        tail = list(sink.tail) if sink else output_lines(result.tail(20))
        raise UpgradeError(f"{what} did not finish within {timeout:.0f} s and was stopped", tail)
    return result


def output_lines(text: str, limit: int = 500) -> list[str]:
    return [line for line in (clean_line(raw, limit) for raw in text.splitlines()) if line]
