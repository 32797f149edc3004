"""How much of the machine a long child program may take, so that the family's services and the bot
itself stay quick while it runs: restic, package upgrades and cleanup steps run at a lower CPU priority
(nice) and I/O priority (ionice class), set in the child between fork and exec.

Each kind of work (the feature's name: backup, upgrade, cleanup) has a level, `low` unless the config's
`[priority]` table says otherwise: low = nice 10 and best-effort I/O at its lowest level; idle = nice 19
and idle I/O (only what no one else wants, which can starve on a busy disk); normal = as the bot."""
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

    def apply(self) -> None:
        """In the child (preexec): lower this process's priorities; failures leave them as they were."""
        if self.nice and os.getpriority(os.PRIO_PROCESS, 0) < self.nice:
            os.setpriority(os.PRIO_PROCESS, 0, self.nice)
        if self.io_class and _syscall is not None and _IOPRIO_SET is not None:
            _syscall(_IOPRIO_SET, _IOPRIO_WHO_PROCESS, 0,
                     (self.io_class << _IOPRIO_CLASS_SHIFT) | self.io_level)


NORMAL = Priority()
LEVELS = {"normal": NORMAL, "low": Priority(10, IOPRIO_CLASS_BEST_EFFORT, 7),
          "idle": Priority(19, IOPRIO_CLASS_IDLE, 0)}
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
