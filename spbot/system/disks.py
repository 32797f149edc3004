"""Disk usage of every real filesystem, and du-like sizes of the biggest directories.

Every call that touches a mount (statvfs, stat, directory scans) runs in its own daemon thread
with a timeout: a hung network mount makes that one mount "unavailable", never the event loop
or the other mounts. A mount whose earlier probe is still hanging is not probed again until it
answers, so a dead NFS server cannot pile up threads.
"""
from __future__ import annotations

import asyncio
import fnmatch
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TypeVar

import psutil
from pydantic import Field
from spbot.model import Model

T = TypeVar("T")

PSEUDO_FSTYPES = frozenset({
    "proc", "sysfs", "tmpfs", "devtmpfs", "devpts", "overlay", "aufs", "squashfs", "mqueue",
    "debugfs", "tracefs", "securityfs", "pstore", "bpf", "autofs", "fusectl", "configfs",
    "hugetlbfs", "nsfs", "ramfs", "rootfs", "binfmt_misc", "efivarfs", "rpc_pipefs", "nfsd",
    "selinuxfs", "sockfs", "pipefs", "shm", "cpuset", "none",
    "fuse.portal", "fuse.gvfsd-fuse", "fuse.lxcfs", "fuse.snapfuse", "fuse.doc-portal",
})
PSEUDO_PREFIXES = ("cgroup",)


class DiskParams(Model):
    """The `[disk]` settings: which mounts to show and how long a probe may take."""
    probe_timeout: float = Field(5.0, gt=0, description="Seconds one mount may take to answer !disk.")
    include_mounts: list[str] = Field(default_factory=list,
                                      description="Mount points shown even when their filesystem type is hidden.")
    hide_mounts: list[str] = Field(default_factory=list,
                                   description="Mount points (fnmatch patterns) never shown.")
    extra_pseudo_types: list[str] = Field(default_factory=list,
                                          description="More filesystem types to hide (tmpfs, overlay and the like are hidden already).")


class MountUsage(Model):
    """One filesystem: space and inodes, or why it could not be read (`available` False)."""
    mountpoint: str
    device: str = ""
    fstype: str = ""
    read_only: bool = False
    available: bool = True
    error: str | None = None
    total: int = 0
    used: int = 0
    free: int = 0
    percent: float = 0.0
    inodes_total: int | None = None
    inodes_used: int | None = None
    inodes_percent: float | None = None
    also_mounted_at: list[str] = Field(default_factory=list)


class DirSize(Model):
    path: str
    bytes: int
    depth: int


class DirSizes(Model):
    """biggest_dirs' answer; with `partial` the sizes are lower bounds (time ran out)."""
    path: str
    total_bytes: int
    entries: list[DirSize]
    partial: bool
    elapsed: float
    files_scanned: int = 0
    unreadable: int = 0
    error: str | None = None


class ProbeTimeout(Exception):
    """A filesystem call did not answer in time (the thread is left to finish on its own)."""


# --------------------------------------------------------------------------- threads

_hanging: dict[str, threading.Thread] = {}


async def in_thread(fn: Callable[..., T], *args: Any, timeout: float, key: str | None = None) -> T:
    """Run fn(*args) in a daemon thread; raise ProbeTimeout after `timeout` seconds.

    With `key`, a call whose previous thread under the same key still hangs fails at once.
    """
    if key is not None and (old := _hanging.get(key)) is not None:
        if old.is_alive():
            raise ProbeTimeout("still not answering (an earlier check is hanging)")
        del _hanging[key]
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def target() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # handed over to the awaiting coroutine
            outcome = (future.set_exception, exc)
        else:
            outcome = (future.set_result, result)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop is closed; nobody is waiting any more
            pass

    thread = threading.Thread(target=target, name=f"spbot-disk:{key or fn.__name__}", daemon=True)
    thread.start()
    try:
        return await asyncio.wait_for(future, timeout)
    except asyncio.TimeoutError:
        if key is not None:
            _hanging[key] = thread
        raise ProbeTimeout(f"did not answer within {timeout:g}s") from None


# --------------------------------------------------------------------------- mounts

def is_pseudo(fstype: str, params: DiskParams) -> bool:
    """Whether a filesystem type holds no user data (proc, tmpfs, overlay, cgroup2, ...)."""
    return (fstype in PSEUDO_FSTYPES or fstype in params.extra_pseudo_types
            or fstype.startswith(PSEUDO_PREFIXES))


def _matches(mountpoint: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(mountpoint, p.rstrip("/") or "/") for p in patterns)


def select_mounts(partitions: Iterable[Any], params: DiskParams) -> list[Any]:
    """The partitions worth showing: real types (or included), not hidden, one per mount point.

    `partitions` are psutil.disk_partitions(all=True) entries; when a mount point appears twice
    the later (visible) mount wins.
    """
    chosen: dict[str, Any] = {}
    for part in partitions:
        if _matches(part.mountpoint, params.hide_mounts):
            continue
        if is_pseudo(part.fstype, params) and not _matches(part.mountpoint, params.include_mounts):
            continue
        chosen.pop(part.mountpoint, None)
        chosen[part.mountpoint] = part
    return list(chosen.values())


@dataclass
class _Probe:
    st_dev: int
    total: int
    used: int
    free: int
    percent: float
    inodes_total: int
    inodes_free: int


def probe_mount(path: str) -> _Probe:
    """Blocking: stat, psutil.disk_usage and statvfs of one path (call through in_thread)."""
    st = os.stat(path)
    usage = psutil.disk_usage(path)
    vfs = os.statvfs(path)
    return _Probe(st.st_dev, usage.total, usage.used, usage.free, usage.percent,
                  vfs.f_files, vfs.f_ffree)


def _usage_from_probe(part: Any, probe: _Probe) -> MountUsage:
    inodes_used = probe.inodes_total - probe.inodes_free if probe.inodes_total else None
    return MountUsage(
        mountpoint=part.mountpoint, device=part.device, fstype=part.fstype,
        read_only="ro" in part.opts.split(","),
        total=probe.total, used=probe.used, free=probe.free, percent=probe.percent,
        inodes_total=probe.inodes_total or None, inodes_used=inodes_used,
        inodes_percent=round(100 * inodes_used / probe.inodes_total, 1) if inodes_used is not None
        else None,
    )


async def _measure(part: Any, timeout: float) -> tuple[MountUsage, int | None]:
    try:
        probe = await in_thread(probe_mount, part.mountpoint, timeout=timeout, key=part.mountpoint)
    except ProbeTimeout as exc:
        error = str(exc)
    except OSError as exc:
        error = exc.strerror or exc.__class__.__name__
    else:
        return _usage_from_probe(part, probe), probe.st_dev
    return MountUsage(mountpoint=part.mountpoint, device=part.device, fstype=part.fstype,
                      read_only="ro" in part.opts.split(","), available=False, error=error), None


def _merge_bind_mounts(measured: list[tuple[MountUsage, int | None]]) -> list[MountUsage]:
    """One entry per filesystem (st_dev): the shortest mount point, others in also_mounted_at."""
    by_dev: dict[int, MountUsage] = {}
    result: list[MountUsage] = []
    for usage, dev in sorted(measured, key=lambda m: (len(m[0].mountpoint), m[0].mountpoint)):
        if dev is not None and dev in by_dev:
            by_dev[dev].also_mounted_at.append(usage.mountpoint)
            continue
        if dev is not None:
            by_dev[dev] = usage
        result.append(usage)
    return sorted(result, key=lambda u: u.mountpoint)


@dataclass
class _Path:
    """A configured path that is not a mount point itself, probed like one."""
    mountpoint: str
    device: str = ""
    fstype: str = ""
    opts: str = ""


def _containing_mount(path: str, partitions: list[Any]) -> Any:
    path = os.path.abspath(path)
    best = None
    for part in partitions:
        mp = part.mountpoint
        if path == mp or path.startswith(mp.rstrip("/") + "/"):
            if best is None or len(mp) >= len(best.mountpoint):
                best = part
    return best or _Path(path)


async def disk_usage(params: DiskParams | None = None, mount: str | None = None) -> list[MountUsage]:
    """Usage of every real filesystem (sorted by mount point), or of the one holding `mount`."""
    params = params or DiskParams()
    partitions = await in_thread(psutil.disk_partitions, True, timeout=params.probe_timeout)
    if mount is not None:
        targets = [_containing_mount(mount, partitions)]
    else:
        targets = select_mounts(partitions, params)
        known = {p.mountpoint for p in targets}
        targets += [_Path(os.path.abspath(p)) for p in params.include_mounts
                    if not any(c in p for c in "*?[") and os.path.abspath(p) not in known]
    measured = await asyncio.gather(*(_measure(t, params.probe_timeout) for t in targets))
    return _merge_bind_mounts(list(measured))


# --------------------------------------------------------------------------- biggest dirs

@dataclass
class _Scan:
    """A du-like walk: stays on one filesystem, follows no symlink, counts hard links once."""
    root: str
    depth: int
    deadline: float
    one_filesystem: bool = True
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    seen: set[tuple[int, int]] = field(default_factory=set)
    files: int = 0
    unreadable: int = 0
    partial: bool = False
    stop: bool = False

    MAX_NESTING = 400

    def out_of_time(self) -> bool:
        if self.stop or time.monotonic() >= self.deadline:
            self.partial = True
        return self.partial

    def run(self) -> int:
        st = os.stat(self.root, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(f"{self.root} is not a directory")
        return self.directory(self.root, 0, st)

    def directory(self, path: str, level: int, st: os.stat_result) -> int:
        total = st.st_blocks * 512
        if self.out_of_time() or level > self.MAX_NESTING:
            return self.record(path, level, total)
        try:
            entries = os.scandir(path)
        except OSError:
            self.unreadable += 1
            return self.record(path, level, total)
        with entries:
            for count, entry in enumerate(entries):
                if count % 256 == 255 and self.out_of_time():
                    break
                total += self.entry(entry, level, st.st_dev)
        return self.record(path, level, total)

    def entry(self, entry: os.DirEntry, level: int, dev: int) -> int:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            self.unreadable += 1
            return 0
        if stat.S_ISDIR(st.st_mode):
            if self.one_filesystem and st.st_dev != dev:
                return 0
            return self.directory(entry.path, level + 1, st)
        self.files += 1
        if st.st_nlink > 1:
            if (st.st_dev, st.st_ino) in self.seen:
                return 0
            self.seen.add((st.st_dev, st.st_ino))
        return st.st_blocks * 512

    def record(self, path: str, level: int, total: int) -> int:
        if level <= self.depth:
            self.sizes[path] = (total, level)
        return total


def _result(scan: _Scan, top_n: int, started: float, error: str | None = None) -> DirSizes:
    sizes = dict(scan.sizes)
    total = sizes.get(scan.root, (0, 0))[0]
    entries = [DirSize(path=p, bytes=b, depth=d) for p, (b, d) in sizes.items() if p != scan.root]
    entries.sort(key=lambda e: (-e.bytes, e.path))
    return DirSizes(path=scan.root, total_bytes=total, entries=entries[:top_n],
                    partial=scan.partial or error is not None, elapsed=time.monotonic() - started,
                    files_scanned=scan.files, unreadable=scan.unreadable, error=error)


async def biggest_dirs(mount: str, depth: int = 2, time_budget: float = 20.0, top_n: int = 10,
                       one_filesystem: bool = True, grace: float = 5.0) -> DirSizes:
    """du-like sizes (allocated bytes) of the `top_n` biggest directories up to `depth` below `mount`.

    Sizes include everything beneath each directory. When `time_budget` runs out the walk stops
    and the result is marked partial (sizes are then lower bounds). A walk stuck in a hung
    syscall for `grace` more seconds is abandoned and reported as partial with an error.
    """
    root = os.path.abspath(mount)
    started = time.monotonic()
    scan = _Scan(root, max(depth, 0), started + max(time_budget, 0.0), one_filesystem)
    try:
        await in_thread(scan.run, timeout=max(time_budget, 0.0) + grace, key=f"du:{root}")
    except ProbeTimeout as exc:
        scan.stop = True
        return _result(scan, top_n, started, error=f"{root}: {exc}")
    except OSError as exc:
        return _result(scan, top_n, started, error=f"{root}: {exc.strerror or exc}")
    return _result(scan, top_n, started)


async def tree_size(path: str, time_budget: float = 60.0) -> DirSizes:
    """Allocated size of everything under `path` on its own filesystem (du -sx)."""
    return await biggest_dirs(path, depth=0, time_budget=time_budget, top_n=0)


# --------------------------------------------------------------------------- formatting

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def format_bytes(n: float) -> str:
    """1536 → '1.5 KiB'; binary units, one decimal from KiB on."""
    sign = "-" if n < 0 else ""
    n = abs(float(n))
    for unit in _UNITS:
        if n < 1024 or unit == _UNITS[-1]:
            return f"{sign}{n:.0f} {unit}" if unit == "B" else f"{sign}{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")

