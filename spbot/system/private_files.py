"""Files only the bot's user may read: the one writer (0600 from the first byte, whole or absent after a
crash) and the one reader of a secret kept in a file, which also registers the value for log redaction
(spbot/logs.py), so a secret read here never shows in a log line."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from spbot.logs import register_secret


def write_private(path: Path, data: str | bytes, *, owner: tuple[int, int] | None = None) -> None:
    """Write `data` to a temporary 0600 file beside `path` (fsync, then `owner` (uid, gid) if given),
    rename it over `path` and fsync the directory: a reader sees the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")   # 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            if owner is not None and owner != (os.fstat(fh.fileno()).st_uid, os.fstat(fh.fileno()).st_gid):
                os.fchown(fh.fileno(), *owner)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def write_private_json(path: Path, data: Any, *, indent: int | None = None) -> None:
    write_private(path, json.dumps(data, indent=indent))


def fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_secret_line(path: Path) -> str:
    """The first line of a secret file, stripped, registered for log redaction. OSError when the file
    cannot be read, IndexError when it has no line at all."""
    value = Path(path).read_text().splitlines()[0].strip()
    register_secret(value)
    return value
