"""Run a program without a shell: argument list, timeout, bounded output, whole group ended on cancel.

Every subprocess the bot starts goes through `run`, so that no caller can forget the timeout,
leak a process group, or let a chatty program fill memory; and so that no child outlives a killed
bot: each one is killed by the kernel when the bot dies and is written down in the bot's state until
it ends, so that the next start ends what is left of it and says so (see `spbot.system.children`).
"""
from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping, Sequence

from spbot.system import children, priority

LineCallback = Callable[[str], Awaitable[None] | None]


class ProcError(Exception):
    """A program could not be started, or ended badly; the message is safe to show."""


@dataclass
class ProcResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    stdout_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def tail(self, lines: int = 10) -> str:
        """The last lines of stderr (or stdout if stderr is empty), for error messages."""
        text = self.stderr.strip() or self.stdout.strip()
        return "\n".join(text.splitlines()[-lines:])


class _Collector:
    """Reads a stream line by line, hands each line to `on_line`, keeps the first `limit` characters."""

    def __init__(self, limit: int, on_line: LineCallback | None = None):
        self.limit = limit
        self.on_line = on_line
        self.lines: deque[str] = deque()
        self.size = 0
        self.truncated = False

    async def feed(self, stream: asyncio.StreamReader) -> None:
        while True:
            raw = await stream.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace")
            self.keep(line)
            if self.on_line is not None:
                result = self.on_line(line.rstrip("\n"))
                if asyncio.iscoroutine(result):
                    await result

    def keep(self, line: str) -> None:
        if self.size + len(line) <= self.limit:
            self.lines.append(line)
            self.size += len(line)
        else:
            self.truncated = True

    def text(self) -> str:
        return "".join(self.lines)


class _TailCollector(_Collector):
    """Keeps the last `limit` characters instead: for stderr, the end says what went wrong."""

    def keep(self, line: str) -> None:
        self.lines.append(line)
        self.size += len(line)
        while self.size > self.limit and len(self.lines) > 1:
            self.size -= len(self.lines.popleft())
            self.truncated = True


async def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    stdin_data: bytes | None = None,
    max_stdout: int = 4_000_000,
    max_stderr: int = 64_000,
    on_stdout_line: LineCallback | None = None,
    on_stderr_line: LineCallback | None = None,
    kill_grace: float = 5.0,
    pass_fds: Sequence[int] = (),
    label: str | None = None,
    if_cut_short: str = "",
    umask: int = -1,
    work: str | None = None,
) -> ProcResult:
    """Run argv (no shell) and wait for it; on timeout or cancellation end its whole process group.

    `env` replaces the environment when given (pass `{**os.environ, ...}` to extend it).
    `pass_fds` are inherited by the program under the same numbers (e.g. a pipe holding a secret).
    `label` names the program for people ("restic restore"; default: the program's name) and
    `if_cut_short` says what it means if the bot is killed while it runs; both go in the report of
    the interrupted job at the next start. `umask` (default: the bot's own, 077) for tools that write
    system files others must read (package managers). `work` names the heavy work the program does
    for a feature ("backup", "upgrade", "cleanup"): it then runs at that work's lower CPU and I/O
    priority (spbot.system.priority), so that the family's services keep their speed.
    """
    argv = [os.fspath(a) for a in argv]
    started = time.monotonic()
    lowered = priority.for_work(work)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin_data is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=lowered.environment(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=priority.preexec(children.die_with_bot(), lowered),
            pass_fds=tuple(pass_fds),
            umask=umask,
            limit=1 << 20,
        )
    except FileNotFoundError as exc:
        raise ProcError(f"{argv[0]} is not installed (not found on PATH)") from exc
    except PermissionError as exc:
        raise ProcError(f"{argv[0]} cannot be executed (permission denied)") from exc
    child = children.track(proc.pid, label or os.path.basename(argv[0]), if_cut_short)
    out = _Collector(max_stdout, on_stdout_line)
    err = _TailCollector(max_stderr, on_stderr_line)

    async def communicate() -> None:
        if stdin_data is not None and proc.stdin is not None:
            proc.stdin.write(stdin_data)
            await proc.stdin.drain()
            proc.stdin.close()
        await asyncio.gather(out.feed(proc.stdout), err.feed(proc.stderr))
        await proc.wait()

    timed_out = False
    try:
        await asyncio.wait_for(communicate(), timeout)
    except asyncio.TimeoutError:
        timed_out = True
        await terminate_group(proc, kill_grace)
    except asyncio.CancelledError:
        await asyncio.shield(terminate_group(proc, kill_grace))
        raise
    except BaseException:  # a line callback failed: never leave the program running unwatched
        await terminate_group(proc, kill_grace)
        raise
    finally:
        children.untrack(child)
    return ProcResult(
        argv=argv,
        returncode=proc.returncode if proc.returncode is not None else -1,
        stdout=out.text(),
        stderr=err.text(),
        duration=time.monotonic() - started,
        timed_out=timed_out,
        stdout_truncated=out.truncated,
    )


async def terminate_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the process group, then SIGKILL it if it is still there after `grace` seconds."""
    if proc.returncode is not None:
        return
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except asyncio.TimeoutError:
        _signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
