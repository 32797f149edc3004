"""When the bot cannot write its own state: its disk is full (a runaway log, a backup cache) or failing.

Every command is stored before it is acted on and every reply is queued in the store before it is sent,
so such a bot can neither take a command nor answer one: it would go silent exactly when the family
needs it. Nothing is acted on meanwhile (the sync position does not move: the commands sent meanwhile
are answered once it can write again). What this adds: the first failed write tells the admin rooms at
once, sent straight to the homeserver (nothing can be queued) and mentioning the admins, so it rings;
once a write works again, that is said too."""
from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import time
from pathlib import Path

from .logs import get_logger
from .render import Reply, human_bytes
from .store import error_chain

log = get_logger(__name__)

NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}
SQLITE_NO_ROOM = {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY}
PROBE_KEY = "write_probe"
RETELL_AFTER = 60.0     # s: a notice that could not be sent is tried again at most this often


def _underlying(exc: BaseException | None) -> BaseException | None:
    """The SQLite error, or the OS error with an errno, that an error is or wraps (nio's crypto store
    raises peewee's errors around SQLite's); None when there is none."""
    return next((error for error in error_chain(exc)
                 if isinstance(error, sqlite3.Error) or (isinstance(error, OSError) and error.errno is not None)),
                None)


def cannot_write(exc: BaseException | None) -> bool:
    """Whether an error says the disk cannot be written."""
    found = _underlying(exc)
    if isinstance(found, sqlite3.Error):
        code = getattr(found, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in SQLITE_NO_ROOM
    return isinstance(found, OSError) and found.errno in NO_ROOM


def reason(exc: BaseException) -> str:
    found = _underlying(exc) or exc
    if isinstance(found, OSError) and found.errno is not None:
        return os.strerror(found.errno)
    return str(found) or found.__class__.__name__


class CannotWrite:
    """Watches the sync loop's steps (spbot/matrix.py `step_watchers`)."""

    def __init__(self, messenger, store, config):
        self.messenger = messenger
        self.store = store
        self.config = config
        self.told = False
        self._tried = 0.0

    async def failed(self, step: str, exc: BaseException) -> None:
        if self.told or not cannot_write(exc) or time.monotonic() - self._tried < RETELL_AFTER:
            return
        self._tried = time.monotonic()
        log.error("cannot_write_state", step=step, reason=reason(exc))
        self.told = await self.messenger.notify_unstored(self._problem(exc))

    async def succeeded(self, step: str) -> None:
        if not self.told:
            return
        try:
            await self.store.put(PROBE_KEY, time.time())
        except (sqlite3.Error, OSError):
            return
        self.told, self._tried = False, 0.0
        log.info("can_write_state_again", step=step)
        await self.messenger.notify(Reply.text(
            "✅ I can write to my disk again: I am taking commands, and answering the ones sent meanwhile."
        ).to(self.config.admins))

    def _problem(self, exc: BaseException) -> Reply:
        return Reply.error(
            f"I cannot write to my disk ({reason(exc)}), so I cannot take commands now. {usage(self.config.state_dir)}",
            "Free space on the server, or check that disk for errors: I go on by myself once I can write "
            "again, and answer the commands sent meanwhile.").to(self.config.admins)


def usage(state_dir: Path) -> str:
    try:
        disk = shutil.disk_usage(state_dir)
    except OSError:
        return ""
    full = 100 * (disk.total - disk.free) / disk.total if disk.total else 100.0
    return f"The disk that holds {state_dir} is {full:.0f}% full ({human_bytes(disk.free)} free)."


def writable(state_dir: Path) -> bool:
    """Whether a byte can be written (and synced) in the directory now."""
    probe = state_dir / ".write-probe"
    try:
        with open(probe, "wb") as file:
            file.write(b"x")
            file.flush()
            os.fsync(file.fileno())
        return True
    except OSError:
        return False
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
