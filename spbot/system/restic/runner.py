"""How restic is started: its environment (repository, credentials, cache, progress rate) and the pipe
that hands it the repository password without touching the disk, an argument list or an environment."""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr

from .errors import ResticError, ResticFailure
from .repository import Repository

_PIPE_CAPACITY = 4096   # the least a pipe holds: the password is written whole before restic starts
# What it means when the bot is killed during an operation, for the report at its next start.
IF_CUT_SHORT = {
    "backup": "no snapshot was made: run the backup again",
    "restore": "the restore may be partial: run it again",
    "forget": "some old snapshots may not have been removed: run the prune again",
    "check": "the repository check did not finish: run it again",
}
_BASE_ENV = ("PATH", "HOME", "LANG", "TMPDIR")


def environment(repository: Repository, password_fd: int, progress_fps: float,
                cache_dir: Path | None) -> dict[str, str]:
    env = {k: os.environ[k] for k in _BASE_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(repository.environment())
    env["RESTIC_REPOSITORY"] = repository.location()
    env["RESTIC_PASSWORD_FILE"] = f"/dev/fd/{password_fd}"
    env["RESTIC_PROGRESS_FPS"] = str(progress_fps)
    if cache_dir is not None:
        env["RESTIC_CACHE_DIR"] = str(cache_dir)
    return env


@contextmanager
def password_pipe(password: SecretStr) -> Iterator[int]:
    """The read end of a pipe that holds the password and then ends (restic reads it whole,
    once, at its start); closed in the bot again after the call. Nothing touches the disk."""
    data = password.get_secret_value().encode()
    if len(data) >= _PIPE_CAPACITY:
        raise ResticError("password", ResticFailure.FAILED,
                          f"the repository password is too long (at most {_PIPE_CAPACITY - 1} bytes)")
    read_end, write_end = os.pipe()   # both close-on-exec: only restic gets the read end
    try:
        try:
            while data:
                data = data[os.write(write_end, data):]
        finally:
            os.close(write_end)
        if read_end < 3:   # the bot was started with stdin closed: 0..2 become restic's stdio
            read_end, low = fcntl.fcntl(read_end, fcntl.F_DUPFD_CLOEXEC, 3), read_end
            os.close(low)
        yield read_end
    finally:
        os.close(read_end)
