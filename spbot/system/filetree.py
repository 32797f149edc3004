"""Files and free space, safely: find or delete files under a configured directory by walking it by
file descriptor (never following a symlink, never leaving its filesystem), and the free space of the
filesystems holding some paths. Machine helpers for the clean-up steps (spbot/system/cleanup/)."""
from __future__ import annotations

import fnmatch
import os
import stat
from pathlib import Path
from typing import Iterator


from spbot.system import disks
from spbot.model import Model


class FileItem(Model):
    path: str
    bytes: int



# --------------------------------------------------------------------------- files, safely

def _open_dir(name: str | os.PathLike, dir_fd: int | None = None, follow: bool = False) -> int:
    flags = os.O_RDONLY | os.O_DIRECTORY | (0 if follow else os.O_NOFOLLOW)
    return os.open(name, flags, dir_fd=dir_fd)


def _walk_files(fd: int, prefix: str, dev: int, max_depth: int = 16
                ) -> Iterator[tuple[int, str, str, os.stat_result]]:
    """(dir_fd, name, path, lstat) of every non-directory under fd, same filesystem, no symlinks."""
    with os.scandir(fd) as it:
        names = [entry.name for entry in it]
    for name in names:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        path = os.path.join(prefix, name)
        if not stat.S_ISDIR(st.st_mode):
            yield fd, name, path, st
        elif st.st_dev == dev and max_depth > 0:
            try:
                sub = _open_dir(name, fd)
            except OSError:
                continue
            try:
                if os.fstat(sub).st_ino == st.st_ino:
                    yield from _walk_files(sub, path, dev, max_depth - 1)
            finally:
                os.close(sub)


def find_files(root: Path, patterns: list[str], delete: bool = False) -> tuple[list[FileItem], list[str]]:
    """Regular files under `root` whose names match a pattern; with `delete`, unlink them.

    Returns (files, errors). Only `root` itself may be a symlink (it is the configured place);
    below it nothing is followed and other filesystems are skipped.
    """
    files: list[FileItem] = []
    errors: list[str] = []
    try:
        top = _open_dir(root, follow=True)
    except FileNotFoundError:
        return files, errors
    except OSError as exc:
        return files, [f"{root}: {exc.strerror}"]
    try:
        for dir_fd, name, path, st in _walk_files(top, str(root), os.fstat(top).st_dev):
            if not stat.S_ISREG(st.st_mode) or not any(fnmatch.fnmatchcase(name, p) for p in patterns):
                continue
            if delete:
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except OSError as exc:
                    errors.append(f"{path}: {exc.strerror}")
                    continue
            files.append(FileItem(path=path, bytes=st.st_size))
    except OSError as exc:
        errors.append(f"{root}: {exc.strerror or exc}")
    finally:
        os.close(top)
    return files, errors


def _remove_contents(fd: int, prefix: str, dev: int, skipped: list[str]) -> int:
    """Delete everything under fd on filesystem `dev`; returns the number of files removed."""
    removed = 0
    with os.scandir(fd) as it:
        names = [entry.name for entry in it]
    for name in names:
        path = os.path.join(prefix, name)
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=fd)
            removed += 1
            continue
        if st.st_dev != dev:
            skipped.append(path)
            continue
        sub = _open_dir(name, fd)
        try:
            if os.fstat(sub).st_ino != st.st_ino:
                skipped.append(path)
                continue
            removed += _remove_contents(sub, path, dev, skipped)
        finally:
            os.close(sub)
        if not any(s.startswith(path + "/") for s in skipped):
            os.rmdir(name, dir_fd=fd)
    return removed


def remove_tree(root: Path) -> tuple[int, list[str]]:
    """rm -rf --one-file-system root, without following symlinks; returns (files, skipped dirs).

    `root` itself must be a real directory, not a symlink; mounts below it are left alone.
    """
    if os.path.normpath(root) == "/":
        raise ValueError("refusing to remove /")
    fd = _open_dir(root)
    skipped: list[str] = []
    try:
        removed = _remove_contents(fd, str(root), os.fstat(fd).st_dev, skipped)
    finally:
        os.close(fd)
    if not skipped:
        os.rmdir(root)
    return removed, skipped


# --------------------------------------------------------------------------- free space

def existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


async def free_space(paths: list[Path]) -> dict[int, int]:
    """Free bytes per filesystem (st_dev) holding each path (or its nearest existing parent)."""
    free: dict[int, int] = {}
    for path in paths:
        probe = await disks.in_thread(disks.probe_mount, str(path), timeout=30.0, key=str(path))
        free[probe.st_dev] = probe.free
    return free


def freed_between(before: dict[int, int], after: dict[int, int]) -> int:
    return sum(max(0, after.get(dev, free) - free) for dev, free in before.items())
