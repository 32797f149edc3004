"""Disk usage on this machine's real filesystems, and du-like sizes on generated trees."""
from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections import namedtuple

import psutil
import pytest

from spbot.system import disks
from spbot.system.disks import DiskParams, biggest_dirs, disk_usage, format_bytes, select_mounts

Part = namedtuple("Part", "device mountpoint fstype opts")
MiB = 1024 * 1024


def write(path, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"x" * size)


# --------------------------------------------------------------------------- usage, real mounts

async def test_root_is_listed_with_sane_numbers():
    usage = await disk_usage()
    root = next(u for u in usage if u.mountpoint == "/")
    real = shutil.disk_usage("/")
    assert root.available and root.error is None
    assert root.total == real.total
    assert 0 < root.used < root.total and 0 < root.free < root.total
    assert abs(root.free - real.free) < 256 * MiB   # others write meanwhile; same order
    assert 0 < root.percent < 100
    assert root.fstype and root.device
    assert root.inodes_total is None or 0 < root.inodes_used <= root.inodes_total
    assert root.inodes_percent is None or 0 <= root.inodes_percent <= 100


async def test_pseudo_filesystems_are_absent():
    usage = await disk_usage()
    shown = {u.mountpoint for u in usage}
    for mp in ("/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/sys/fs/cgroup"):
        assert mp not in shown
    assert all(not disks.is_pseudo(u.fstype, DiskParams()) for u in usage)
    pseudo = [p.mountpoint for p in psutil.disk_partitions(all=True) if p.fstype in ("proc", "tmpfs")]
    assert pseudo and not shown & set(pseudo)


async def test_include_and_hide_config():
    tmpfs = [p.mountpoint for p in psutil.disk_partitions(all=True) if p.fstype == "tmpfs"]
    if not tmpfs:
        pytest.skip("no tmpfs mount on this machine")
    shown = {u.mountpoint for u in await disk_usage(DiskParams(include_mounts=[tmpfs[0]]))}
    assert tmpfs[0] in shown
    hidden = {u.mountpoint for u in await disk_usage(DiskParams(hide_mounts=["/"]))}
    assert "/" not in hidden


async def test_included_plain_directory_is_probed(tmp_path):
    usage = await disk_usage(DiskParams(include_mounts=[str(tmp_path)]))
    # tmp_path lives on a filesystem already shown: it is merged as a bind-like alias
    assert any(str(tmp_path) in u.also_mounted_at or u.mountpoint == str(tmp_path) for u in usage)


async def test_usage_of_one_path_picks_its_filesystem(tmp_path):
    [one] = await disk_usage(mount=str(tmp_path))
    assert str(tmp_path).startswith(one.mountpoint)
    assert one.available and one.total > 0


async def test_missing_path_is_unavailable_not_an_exception(tmp_path):
    [one] = await disk_usage(mount=str(tmp_path / "nope"))
    assert one.available and str(tmp_path).startswith(one.mountpoint)  # its filesystem answers
    params = DiskParams(include_mounts=[str(tmp_path / "gone")])
    gone = [u for u in await disk_usage(params) if u.mountpoint == str(tmp_path / "gone")]
    assert gone and not gone[0].available and "No such file" in gone[0].error


def test_select_mounts_filters_types_and_duplicates():
    parts = [
        Part("/dev/sda1", "/", "ext4", "rw"),
        Part("proc", "/proc", "proc", "rw"),
        Part("cgroup2", "/sys/fs/cgroup", "cgroup2", "rw"),
        Part("overlay", "/var/lib/docker/x/merged", "overlay", "rw"),
        Part("/dev/loop0", "/snap/core/1", "squashfs", "ro"),
        Part("portal", "/run/user/1000/doc", "fuse.portal", "rw"),
        Part("srv:/export", "/mnt/nfs", "nfs4", "rw"),
        Part("/dev/sdb", "/volumes/sdb", "ext4", "rw"),
        Part("/dev/sdb", "/volumes/sdb", "ext4", "ro"),     # mounted twice: the last one wins
        Part("sshfs", "/mnt/remote", "fuse.sshfs", "rw"),
        Part("/dev/sdc", "/mnt/backup", "xfs", "rw"),
    ]
    chosen = select_mounts(parts, DiskParams(hide_mounts=["/mnt/back*"]))
    assert [p.mountpoint for p in chosen] == ["/", "/mnt/nfs", "/volumes/sdb", "/mnt/remote"]
    assert chosen[2].opts == "ro"
    with_run = select_mounts(parts, DiskParams(include_mounts=["/sys/fs/cgroup"],
                                               extra_pseudo_types=["nfs4"]))
    assert "/sys/fs/cgroup" in [p.mountpoint for p in with_run]
    assert "/mnt/nfs" not in [p.mountpoint for p in with_run]


def test_bind_mounts_of_one_filesystem_are_merged():
    a = disks.MountUsage(mountpoint="/", total=10)
    b = disks.MountUsage(mountpoint="/nix/store", total=10)
    c = disks.MountUsage(mountpoint="/volumes/sdb", total=20)
    d = disks.MountUsage(mountpoint="/mnt/hung", available=False, error="x")
    merged = disks._merge_bind_mounts([(b, 1), (a, 1), (c, 2), (d, None)])
    assert [m.mountpoint for m in merged] == ["/", "/mnt/hung", "/volumes/sdb"]
    assert merged[0].also_mounted_at == ["/nix/store"]


async def test_hung_mount_is_reported_unavailable(monkeypatch):
    """A statvfs that never returns (dead NFS) cannot be made for real here; a sleeping probe stands in."""
    real = disks.probe_mount
    release = __import__("threading").Event()

    def hanging(path):
        if path == "/":
            release.wait(10)
        return real(path)

    monkeypatch.setattr(disks, "probe_mount", hanging)
    try:
        started = time.monotonic()
        usage = await disk_usage(DiskParams(probe_timeout=0.3))
        root = next(u for u in usage if u.mountpoint == "/")
        assert not root.available and "did not answer" in root.error
        assert time.monotonic() - started < 3
        # asked again while the first probe still hangs: answered at once, no new thread
        again = next(u for u in await disk_usage(DiskParams(probe_timeout=5)) if u.mountpoint == "/")
        assert not again.available and "still not answering" in again.error
    finally:
        release.set()
    for _ in range(50):   # once the stuck probe returns, the mount is probed again
        if next(u for u in await disk_usage() if u.mountpoint == "/").available:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("/ stayed unavailable after its probe came back")


# --------------------------------------------------------------------------- biggest dirs

@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    write(root / "big" / "a.bin", 2 * MiB)
    write(root / "big" / "deep" / "b.bin", 1 * MiB)
    write(root / "medium" / "c.bin", 1536 * 1024)
    write(root / "small" / "d.txt", 8192)
    (root / "empty").mkdir()
    write(tmp_path / "outside" / "huge.bin", 4 * MiB)
    (root / "link-out").symlink_to(tmp_path / "outside")      # never followed
    os.link(root / "medium" / "c.bin", root / "medium" / "c-hardlink.bin")  # counted once
    return root


def near(value, expected, slack=64 * 1024):
    return expected <= value <= expected + slack


async def test_biggest_dirs_sizes_and_order(tree):
    result = await biggest_dirs(str(tree), depth=1, time_budget=10, top_n=10)
    assert not result.partial and result.error is None
    names = [os.path.relpath(e.path, tree) for e in result.entries]
    assert names == ["big", "medium", "small", "empty"]
    sizes = {os.path.relpath(e.path, tree): e.bytes for e in result.entries}
    assert near(sizes["big"], 3 * MiB)
    assert near(sizes["medium"], 1536 * 1024)
    assert near(sizes["small"], 8192)
    assert near(result.total_bytes, 3 * MiB + 1536 * 1024 + 8192, slack=128 * 1024)
    assert result.files_scanned == 6   # 4 files, the hard link and the symlink itself


async def test_biggest_dirs_depth_and_top_n(tree):
    result = await biggest_dirs(str(tree), depth=2, time_budget=10, top_n=2)
    assert [os.path.relpath(e.path, tree) for e in result.entries] == ["big", "medium"]
    deeper = await biggest_dirs(str(tree), depth=2, time_budget=10, top_n=10)
    deep = next(e for e in deeper.entries if e.path.endswith("big/deep"))
    assert deep.depth == 2 and near(deep.bytes, MiB)


async def test_zero_time_budget_gives_partial(tree):
    result = await biggest_dirs(str(tree), depth=2, time_budget=0, top_n=10)
    assert result.partial
    assert result.total_bytes < 3 * MiB


async def test_biggest_dirs_stays_on_one_filesystem():
    """/dev (devtmpfs) has /dev/pts and /dev/shm mounted below it: they are not entered."""
    mounted = {p.mountpoint for p in psutil.disk_partitions(all=True)
               if p.mountpoint.startswith("/dev/")}
    if not mounted or not os.path.isdir("/dev"):
        pytest.skip("no mounts below /dev here")
    result = await biggest_dirs("/dev", depth=1, time_budget=5, top_n=100)
    assert not {e.path for e in result.entries} & mounted


async def test_biggest_dirs_of_missing_path(tmp_path):
    result = await biggest_dirs(str(tmp_path / "nope"), depth=1, time_budget=1)
    assert result.error and result.partial and result.entries == []


def test_format_bytes():
    assert format_bytes(0) == "0 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(3 * MiB) == "3.0 MiB"
    assert format_bytes(1.5 * 1024 ** 4) == "1.5 TiB"
    assert format_bytes(-2048) == "-2.0 KiB"
