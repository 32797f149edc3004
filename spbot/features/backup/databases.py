"""A service's database, dumped consistently before its snapshot and imported back after a restore.

PostgreSQL: `pg_dump --format=custom` as the database's system user (`runuser -u postgres` when the bot
runs as root), imported with `pg_restore --clean --if-exists --single-transaction`. MySQL/MariaDB:
`mysqldump --single-transaction`, imported with `mysql`. SQLite: the online backup API (a consistent
copy while the service keeps writing), put back with the service stopped.

The dump lands in the service's dump directory, which the snapshot holds next to the data paths; the
backup deletes it afterwards, the restore imports it and deletes it too.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, model_validator
from spbot.model import Model

DUMP_TIMEOUT = 1800.0


class DatabaseError(Exception):
    """A dump or an import failed; the message is safe to show."""


class Database(Model):
    """How one service's database is dumped and imported back."""
    model_config = ConfigDict(extra="forbid")
    kind: Literal["postgresql", "mysql", "sqlite"] = Field(
        examples=["postgresql"], description="postgresql, mysql (also MariaDB) or sqlite.")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$", examples=["nextcloud"],
                             description="postgresql and mysql: the database's name.")
    path: Path | None = Field(None, description="sqlite: the database file (an absolute path).")
    user: str | None = Field(
        None, pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
        description="The system user the dump and import tools run as when the bot runs as root, e.g. "
                    "postgres (unset: the bot's own user).")
    host: str | None = Field(None, description="A socket directory or host name of the database server "
                                               "(unset: the tools' default).")
    port: int | None = Field(None, gt=0, lt=65536, description="The database server's port (unset: the "
                                                               "tools' default).")
    tool_dir: Path | None = Field(
        None, description="The directory of pg_dump, pg_restore, mysqldump and mysql (unset: found on PATH).")

    @model_validator(mode="after")
    def _complete(self) -> "Database":
        if self.kind == "sqlite" and (self.path is None or not self.path.is_absolute()):
            raise ValueError("a sqlite database needs path = \"/absolute/path/to/file.db\"")
        if self.kind != "sqlite" and not self.name:
            raise ValueError(f"a {self.kind} database needs its name = \"...\"")
        return self

    def dump_file(self, directory: Path) -> Path:
        if self.kind == "sqlite":
            return directory / self.path.name
        return directory / f"{self.name}.{'pgdump' if self.kind == 'postgresql' else 'sql'}"

    def describe(self) -> str:
        return f"SQLite {self.path}" if self.kind == "sqlite" else \
            f"{'PostgreSQL' if self.kind == 'postgresql' else 'MySQL'} database {self.name}"


# --------------------------------------------------------------------------- dump and import

async def dump(db: Database, directory: Path, timeout: float = DUMP_TIMEOUT) -> Path:
    """A consistent dump of the database into `directory` (created); returns the dump file."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    target = db.dump_file(directory)
    partial = target.with_name(target.name + ".partial")
    if db.kind == "sqlite":
        await asyncio.to_thread(_sqlite_copy, db.path, partial)
    elif db.kind == "postgresql":
        await _pipe(db, _tool(db, "pg_dump", "--format=custom", *_pg_where(db), "--", db.name),
                    stdout=partial, timeout=timeout)
    else:
        await _pipe(db, _tool(db, "mysqldump", "--single-transaction", "--routines", "--events",
                              *_my_where(db), "--", db.name), stdout=partial, timeout=timeout)
    os.replace(partial, target)
    return target


async def reimport(db: Database, directory: Path, timeout: float = DUMP_TIMEOUT) -> Path:
    """Import the dump in `directory` back into the live database (the service's units stopped)."""
    source = db.dump_file(directory)
    if not source.is_file():
        raise DatabaseError(f"the snapshot holds no dump of the {db.describe()} ({source.name} is missing)")
    if db.kind == "sqlite":
        await asyncio.to_thread(_sqlite_put_back, source, db.path)
    elif db.kind == "postgresql":
        await _pipe(db, _tool(db, "pg_restore", "--clean", "--if-exists", "--single-transaction",
                              *_pg_where(db), f"--dbname={db.name}"), stdin=source, timeout=timeout)
    else:
        await _pipe(db, _tool(db, "mysql", *_my_where(db), db.name), stdin=source, timeout=timeout)
    return source


def _pg_where(db: Database) -> list[str]:
    return ([f"--host={db.host}"] if db.host else []) + ([f"--port={db.port}"] if db.port else [])


def _my_where(db: Database) -> list[str]:
    where = []
    if db.host:
        where.append(f"--socket={db.host}" if db.host.startswith("/") else f"--host={db.host}")
    return where + ([f"--port={db.port}"] if db.port else [])


def _tool(db: Database, name: str, *args: str) -> list[str]:
    exe = str(db.tool_dir / name) if db.tool_dir else (shutil.which(name) or name)
    argv = [exe, *args]
    if db.user and os.geteuid() == 0:
        argv = ["runuser", "-u", db.user, "--", *argv]
    return argv


async def _pipe(db: Database, argv: list[str], *, stdout: Path | None = None, stdin: Path | None = None,
                timeout: float) -> None:
    """Run a dump or import tool with a file as its stdout or stdin (binary, not held in memory)."""
    out = open(stdout, "wb") if stdout else None
    into = open(stdin, "rb") if stdin else None
    try:
        if out is not None:
            os.chmod(stdout, 0o600)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=into or asyncio.subprocess.DEVNULL, stdout=out or asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, env={**os.environ, "LC_ALL": "C"})
        except OSError as exc:
            raise DatabaseError(f"cannot start {Path(argv[0]).name if argv[0] != 'runuser' else argv[4]}: "
                                f"{exc.strerror}") from None
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise DatabaseError(f"the {db.describe()} did not answer within {timeout:.0f} s") from None
    finally:
        for handle in (out, into):
            if handle is not None:
                handle.close()
    if proc.returncode != 0:
        tail = " ".join(err.decode(errors="replace").strip().splitlines()[-2:])
        tool = Path(argv[4] if argv[0] == "runuser" else argv[0]).name
        raise DatabaseError(f"{tool} failed for the {db.describe()} (exit {proc.returncode})"
                            + (f": {tail}" if tail else ""))


def _sqlite_copy(source: Path, dest: Path) -> None:
    """SQLite's online backup: page by page while the service keeps writing, never a torn copy."""
    if not source.is_file():
        raise DatabaseError(f"the SQLite database {source} does not exist")
    dest.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    out = sqlite3.connect(dest)
    try:
        src.backup(out)
    except sqlite3.Error as exc:
        raise DatabaseError(f"the online backup of {source} failed: {exc}") from None
    finally:
        out.close()
        src.close()
    os.chmod(dest, 0o600)


def _sqlite_put_back(dump_file: Path, live: Path) -> None:
    """Replace the live file by the dump (the service is stopped), keeping the live file's owner and mode;
    its -wal and -shm files belong to the replaced database and go."""
    stat = live.stat() if live.exists() else None
    staged = live.with_name(f".{live.name}.spbot-import")
    shutil.copyfile(dump_file, staged)
    if stat is not None:
        os.chown(staged, stat.st_uid, stat.st_gid)
        os.chmod(staged, stat.st_mode & 0o7777)
    for suffix in ("-wal", "-shm", "-journal"):
        live.with_name(live.name + suffix).unlink(missing_ok=True)
    os.replace(staged, live)
