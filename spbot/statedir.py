"""The state directory holds the bot's secrets (access token, crypto store and its key, queued
passwords): nobody but the bot's user may read any of it. The bot runs with umask 077 so whatever it
(or a library, or a child process) creates there is 0600 / 0700, and at start it takes group and
other permissions away from anything an older version or another tool left readable."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from .logs import get_logger

log = get_logger(__name__)

PRIVATE_UMASK = 0o077


def use_private_umask() -> None:
    """From here on, files are created 0600 and directories 0700 whatever the caller's umask."""
    os.umask(PRIVATE_UMASK)


def make_private(state_dir: Path) -> list[Path]:
    """Clear the group and other bits of the state directory and everything in it (symbolic links
    are left alone: they are not followed); returns what was changed. Owner bits are kept, so a
    read-only file (a restic pack) stays read-only."""
    state_dir = Path(state_dir)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    changed = [state_dir] if _restrict(state_dir) else []
    for root, dirs, files in os.walk(state_dir):
        for name in dirs + files:
            path = Path(root) / name
            if _restrict(path):
                changed.append(path)
    if changed:
        log.warning("state_files_made_private", count=len(changed),
                    first=str(changed[0].relative_to(state_dir.parent)))
    return changed


def _restrict(path: Path) -> bool:
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode) or not mode & 0o077:
        return False
    os.chmod(path, stat.S_IMODE(mode) & ~0o077)
    return True


def stored_access_token(state_dir: Path) -> str | None:
    """The bot's access token as its last login stored it (credentials.json); None before the first."""
    import json
    try:
        return json.loads((state_dir / "credentials.json").read_text())["access_token"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


LOCK_FILE = "spbot.lock"
_held: list = []         # the lock's open file, kept for the life of the process


class AlreadyRunning(Exception):
    """Another spbot holds the state directory."""


def hold_state_lock(state_dir: Path) -> None:
    """Be the only bot on this state directory: two would share one E2EE device (each overwriting the
    other's keys: messages that no longer decrypt) and one outbox (every reply sent twice). The lock is
    the kernel's (flock), so a killed bot leaves none behind; its file names the holder's pid."""
    import fcntl
    handle = open(Path(state_dir) / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise AlreadyRunning(
            f"another spbot (pid {holder}) is running with the state directory {state_dir}: stop it first "
            "(systemctl stop spbot), or give this one a state_dir of its own") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _held.append(handle)
