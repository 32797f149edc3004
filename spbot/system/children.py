"""The bot's child processes must not outlive it, and what a killed bot left behind is ended and told.

Three parts, because a kill -9 gives the bot no chance to clean up after itself:

- `die_with_bot()`: a preexec hook that asks the kernel to SIGKILL the child when the bot dies
  (PR_SET_PDEATHSIG). The signal comes when the thread that forked the child ends; asyncio forks
  from the event-loop thread, which lives as long as the bot. It covers the direct child only, and
  the kernel drops it when a set-user-ID program (sudo) is executed.
- `ChildRecord`: every running child, with its process group leader's pid, start time and the job
  it works for, written to `children.json` in the state directory as it starts and ends.
- `end_leftovers()`: at the next start, whatever is still running in those process groups (the
  grandchildren the death signal does not reach) is ended, and every recorded child is returned so
  that the "job interrupted" report can say what was cut short.

A pid may have been reused by an unrelated program since the record was written: a process is only
signalled when its start time (in clock ticks since boot, from /proc/<pid>/stat) proves it is the
recorded one or was started in that recorded session after it, and through a pidfd opened before
that check, so the check and the signal are about the same process. A record from before a reboot
ends nothing.

It also removes `restic-pw-*` files that older versions wrote into the state directory (a killed
bot left them there, holding the repository password); restic now reads it from a pipe.
"""
from __future__ import annotations

import asyncio
import contextvars
import ctypes
import json
import os
import re
import select
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from spbot.logs import get_logger

log = get_logger(__name__)

RECORD_NAME = "children.json"
OLD_PASSWORD_FILES = "restic-pw-*"
PR_SET_PDEATHSIG = 1

# The job a piece of work belongs to; the job runner's task is named "job <id>" as a fallback.
current_job: contextvars.ContextVar[int | None] = contextvars.ContextVar("current_job", default=None)


# --------------------------------------------------------------------------- dying with the bot


def _load_prctl() -> Callable[..., int] | None:
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):   # not Linux
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_prctl = _load_prctl()


def die_with_bot() -> Callable[[], None] | None:
    """A preexec_fn for the child: SIGKILL it when the bot dies. Made in the parent, so the child
    (between fork and exec) only makes one system call and compares two numbers."""
    if _prctl is None:
        return None
    prctl, bot_pid = _prctl, os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != bot_pid:   # the bot died before the line above: no signal will come
            os.kill(os.getpid(), signal.SIGKILL)
    return preexec


# --------------------------------------------------------------------------- what /proc says


@dataclass(frozen=True)
class ProcStat:
    pid: int
    name: str       # the kernel's short name (comm)
    state: str      # R, S, D, Z (exited, not yet reaped) ...
    session: int
    start: int      # clock ticks after boot


def read_stat(pid: int) -> ProcStat | None:
    """The process's /proc/<pid>/stat, or None when there is no such process (any more)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    head, _, tail = text.rpartition(")")
    fields = tail.split()   # fields[0] is the state, field 3 in proc(5)
    try:
        return ProcStat(pid, head.split("(", 1)[1], fields[0], int(fields[3]), int(fields[19]))
    except (IndexError, ValueError):
        return None


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


# --------------------------------------------------------------------------- the record


@dataclass
class Child:
    """One running child: the leader of its own session and process group (pid = sid = pgid)."""
    pid: int
    start: int
    label: str              # what it is, for people: "restic restore"
    job: int | None = None
    if_cut_short: str = ""  # what it means when it is cut short: "the restore may be partial: run it again"


class ChildRecord:
    """The running children, rewritten (atomically, 0600) into one small file at each start and end."""

    def __init__(self, path: Path):
        self.path = path
        self.children: dict[int, Child] = {}
        self._boot = boot_id()
        me = read_stat(os.getpid())
        self._owner = {"pid": os.getpid(), "start": me.start if me else 0}
        self._lock = threading.Lock()
        self._write()

    def add(self, pid: int, label: str, if_cut_short: str = "") -> Child | None:
        stat = read_stat(pid)
        if stat is None:   # already gone: nothing can be left of it
            return None
        child = Child(pid, stat.start, label, job_of_current_task(), if_cut_short)
        with self._lock:
            self.children[pid] = child
            self._write()
        return child

    def remove(self, child: Child) -> None:
        with self._lock:
            if self.children.get(child.pid) is child:
                del self.children[child.pid]
                self._write()

    def _write(self) -> None:
        """Never raises: a child that could not be written down still runs, watched by `proc.run`."""
        data = {"boot_id": self._boot, "bot": self._owner,
                "children": [asdict(c) for c in self.children.values()]}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.error("children_record_not_written", path=str(self.path), error=exc.strerror)


_record: ChildRecord | None = None


def start_recording(state_dir: Path) -> None:
    """From now on every child `proc.run` starts is written down in state_dir (the bot calls this at
    start, after `end_leftovers`, whose record it replaces)."""
    global _record
    _record = ChildRecord(state_dir / RECORD_NAME)


def stop_recording() -> None:
    global _record
    _record = None


def track(pid: int, label: str, if_cut_short: str = "") -> Child | None:
    """Write down a child that just started (no-op unless recording)."""
    record = _record
    return record.add(pid, label, if_cut_short) if record is not None else None


def untrack(child: Child | None) -> None:
    record = _record
    if child is not None and record is not None:
        record.remove(child)


def job_of_current_task() -> int | None:
    job = current_job.get()
    if job is not None:
        return job
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return None
    match = re.fullmatch(r"job (\d+)", task.get_name()) if task is not None else None
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------- the next start


@dataclass
class Leftover:
    """A child that was running when the bot died, and what was done about it at this start."""
    child: Child
    ended: list[ProcStat] = field(default_factory=list)       # still running, stopped now
    not_ended: list[tuple[ProcStat, str]] = field(default_factory=list)  # still running: why not stopped

    @property
    def job(self) -> int | None:
        return self.child.job

    @property
    def was_running(self) -> bool:
        """Something of it was still running at this start."""
        return bool(self.ended or self.not_ended)

    def sentence(self) -> str:
        """E.g. "restic restore (pid 812) was still running and has been stopped; the restore may be
        partial: run it again"."""
        c = self.child
        refused = {stat.pid: why for stat, why in self.not_ended}
        if c.pid in refused:
            parts = [f"{c.label} (pid {c.pid}) is still running and could not be stopped "
                     f"({refused[c.pid]}): end it by hand"]
        elif any(p.pid == c.pid for p in self.ended):
            parts = [f"{c.label} (pid {c.pid}) was still running and has been stopped"]
        else:
            parts = [f"{c.label} (pid {c.pid}) was running and ended with the bot"]
        others = [p for p in self.ended if p.pid != c.pid]
        if others:
            names = ", ".join(f"{p.name} (pid {p.pid})" for p in others)
            one = len(others) == 1
            parts.append(f"{names}, started by it, {'was' if one else 'were'} still running and "
                         f"{'has' if one else 'have'} been stopped")
        for stat, why in self.not_ended:
            if stat.pid != c.pid:
                parts.append(f"{stat.name} (pid {stat.pid}), started by it, is still running and could "
                             f"not be stopped ({why}): end it by hand")
        if c.if_cut_short:
            parts.append(c.if_cut_short)
        return "; ".join(parts)


def end_leftovers(state_dir: Path, grace: float = 5.0) -> list[Leftover]:
    """Read the record a previous run left, end what is still running of it (SIGTERM, then SIGKILL
    after `grace` seconds), and return one Leftover per recorded child. Blocking: use a thread."""
    path = state_dir / RECORD_NAME
    try:
        data = json.loads(path.read_text())
        children = [Child(**c) for c in data["children"]]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("children_record_unreadable", path=str(path), error=str(exc))
        return []
    leftovers = [Leftover(c) for c in children]
    if data.get("boot_id") != boot_id():   # the machine restarted: all of them ended with it
        return leftovers
    owner = data.get("bot") or {}
    if owner.get("pid") != os.getpid() and _alive(owner.get("pid"), owner.get("start")):
        log.error("children_record_in_use", pid=owner["pid"], path=str(path),
                  hint="another bot runs with this state directory; its children are left alone")
        return []
    try:
        _end(leftovers, grace)
    except Exception:   # the bot must start even so; the report still names every child
        log.exception("ending_leftovers_failed")
    for leftover in leftovers:
        log.warning("child_left_by_previous_run", pid=leftover.child.pid, label=leftover.child.label,
                    job=leftover.child.job, ended=[p.pid for p in leftover.ended],
                    not_ended=[p.pid for p, _ in leftover.not_ended])
    return leftovers


def _alive(pid: object, start: object) -> bool:
    stat = read_stat(pid) if isinstance(pid, int) and pid > 0 else None
    return stat is not None and stat.start == start and stat.state != "Z"


def members(child: Child, stats: Sequence[ProcStat] | None = None) -> list[ProcStat]:
    """The processes that belong to the recorded child now: its session, started no earlier than it.

    If the leader's pid is taken by a process with another start time, the session is not ours (the
    kernel hands out a pid again only when no process has it as pid, group or session id)."""
    if child.pid <= 1:
        return []
    leader = read_stat(child.pid)
    if leader is not None and leader.start != child.start:
        return []
    stats = stats if stats is not None else [s for s in map(read_stat, _all_pids()) if s is not None]
    return [s for s in stats if s.session == child.pid and s.start >= child.start and s.state != "Z"]


def _end(leftovers: list[Leftover], grace: float) -> None:
    stats = [s for s in map(read_stat, _all_pids()) if s is not None]
    signalled: list[tuple[Leftover, ProcStat, int | None]] = []
    for leftover in leftovers:
        for stat in members(leftover.child, stats):
            if stat.pid == os.getpid():
                continue
            try:
                pidfd = _terminate_if_same(stat)
            except _Gone:
                continue
            except PermissionError:
                leftover.not_ended.append((stat, "not allowed to signal it"))
                continue
            signalled.append((leftover, stat, pidfd))
    deadline = time.monotonic() + grace
    for leftover, stat, pidfd in signalled:
        try:
            if not _wait_gone(stat, pidfd, deadline):
                _send(stat, pidfd, signal.SIGKILL)
                _wait_gone(stat, pidfd, time.monotonic() + 2)
        except ProcessLookupError:
            pass
        finally:
            if pidfd is not None:
                os.close(pidfd)
        leftover.ended.append(stat)


class _Gone(Exception):
    """The process ended, or its pid now belongs to another one."""


def _terminate_if_same(stat: ProcStat) -> int | None:
    """SIGTERM the process if it is still the one in `stat`; its pidfd (None where the kernel has
    none, and then a small window remains between the check and the signal)."""
    try:
        pidfd: int | None = os.pidfd_open(stat.pid)
    except ProcessLookupError:
        raise _Gone from None
    except (AttributeError, OSError):
        pidfd = None
    try:
        now = read_stat(stat.pid)
        if now is None or now.start != stat.start or now.state == "Z":
            raise _Gone
        _send(stat, pidfd, signal.SIGTERM)
    except BaseException as exc:
        if pidfd is not None:
            os.close(pidfd)
        if isinstance(exc, ProcessLookupError):
            raise _Gone from None
        raise
    return pidfd


def _send(stat: ProcStat, pidfd: int | None, sig: int) -> None:
    if pidfd is not None:
        signal.pidfd_send_signal(pidfd, sig)
    else:
        os.kill(stat.pid, sig)


def _wait_gone(stat: ProcStat, pidfd: int | None, deadline: float) -> bool:
    while True:
        if pidfd is not None:   # readable once the process has exited
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            if poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
                return True
        elif not _alive(stat.pid, stat.start):
            return True
        else:
            time.sleep(0.05)
        if time.monotonic() >= deadline:
            return False


# --------------------------------------------------------------------------- password files of old versions


def remove_old_password_files(state_dir: Path) -> int:
    """Remove the `restic-pw-*` files older versions wrote (and a kill -9 left); how many."""
    removed = 0
    for path in state_dir.glob(OLD_PASSWORD_FILES):
        try:
            if path.is_file() and not path.is_symlink() and path.lstat().st_uid == os.getuid():
                path.unlink()
                removed += 1
        except OSError as exc:
            log.warning("old_password_file_not_removed", path=str(path), error=exc.strerror)
    if removed:
        log.warning("old_password_files_removed", count=removed, directory=str(state_dir))
    return removed
