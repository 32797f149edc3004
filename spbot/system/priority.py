"""How much of the machine a long child program may take, so that the family's services and the bot
itself stay quick while it runs: restic, package upgrades and cleanup steps run at a lower CPU priority
(nice) and I/O priority (ionice class), set in the child between fork and exec.

Each kind of work (the feature's name: backup, upgrade, cleanup) has a level, `low` unless the config's
`[priority]` table says otherwise: low = nice 10, best-effort I/O at its lowest level and half the cores
for a program that sizes its threads to the machine (restic); idle = nice 19, idle I/O (only what no one
else wants, which can starve on a busy disk) and one core; normal = as the bot."""
from __future__ import annotations

import ctypes
import os
import platform
from dataclasses import dataclass
from typing import Callable, Mapping

IOPRIO_CLASS_BEST_EFFORT, IOPRIO_CLASS_IDLE = 2, 3
_IOPRIO_WHO_PROCESS, _IOPRIO_CLASS_SHIFT = 1, 13
_IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "armv7l": 314, "riscv64": 30}.get(platform.machine())


@dataclass(frozen=True)
class Priority:
    nice: int = 0
    io_class: int = 0             # 0: unchanged
    io_level: int = 0
    core_share: float = 1.0       # of the machine's cores, for programs that size their threads (Go's restic)

    def environment(self, env: Mapping[str, str] | None) -> dict[str, str] | None:
        """The child's environment with its thread limit: a Go program (restic) runs its work on as many
        threads as there are cores, and on a 2-core machine that left none for anyone else (nice makes
        the others win the CPU, but each of their wake-ups waits behind a busy thread: `!ping` took 1.6×
        as long during a backup; 1.1× with one core left free). None: the bot's own, unchanged."""
        if self.core_share >= 1.0:
            return dict(env) if env is not None else None
        threads = max(1, int((os.cpu_count() or 1) * self.core_share))
        return {**(env if env is not None else os.environ), "GOMAXPROCS": str(threads)}

    def apply(self) -> None:
        """In the child (preexec): lower this process's priorities; failures leave them as they were."""
        if self.nice and os.getpriority(os.PRIO_PROCESS, 0) < self.nice:
            os.setpriority(os.PRIO_PROCESS, 0, self.nice)
            _lower_own_autogroup(self.nice)
        if self.io_class and _syscall is not None and _IOPRIO_SET is not None:
            _syscall(_IOPRIO_SET, _IOPRIO_WHO_PROCESS, 0,
                     (self.io_class << _IOPRIO_CLASS_SHIFT) | self.io_level)


def _lower_own_autogroup(nice: int) -> None:
    """With the kernel's autogroup scheduling (on by default on Debian and most distributions), CPU time
    is shared between sessions first and nice only counts within a session. The child runs in a session
    of its own (the bot kills it by its process group), so its nice alone gave it a full share against
    Synapse and the family's services (measured: `!ping` twice as slow beside two `nice 19` loops). The
    session's own nice is set too; only when the child leads its session, never the bot's."""
    if os.getsid(0) != os.getpid():
        return
    try:
        with open("/proc/self/autogroup", "w") as autogroup:
            autogroup.write(str(nice))
    except OSError:                  # no autogroup in this kernel: nice alone is what counts
        pass


NORMAL = Priority()
LEVELS = {"normal": NORMAL, "low": Priority(10, IOPRIO_CLASS_BEST_EFFORT, 7, core_share=0.5),
          "idle": Priority(19, IOPRIO_CLASS_IDLE, 0, core_share=0.0)}
DEFAULT_LEVEL = "low"
_configured: dict[str, str] = {}


def _load_syscall() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):    # not Linux
        return None


_syscall = _load_syscall()


def configure(levels: Mapping[str, str]) -> None:
    """The config's `[priority]` table: work name -> level (normal | low | idle)."""
    _configured.clear()
    _configured.update(levels)


def for_work(work: str | None) -> Priority:
    """The priority of a program run for `work` (None: not heavy work, the bot's own)."""
    if work is None:
        return NORMAL
    return LEVELS[_configured.get(work, DEFAULT_LEVEL)]


def preexec(first: Callable[[], None] | None, priority: Priority) -> Callable[[], None] | None:
    """A preexec_fn that runs `first` (e.g. dying with the bot), then lowers the child's priority."""
    if priority == NORMAL:
        return first

    def run() -> None:
        if first is not None:
            first()
        priority.apply()
    return run
