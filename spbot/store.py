"""The bot's own state in one SQLite file (aiosqlite): each module owns its tables and declares them here
through `ensure_schema`, so the store stays a thin, shared connection."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import aiosqlite

WAL_SIZE_LIMIT = 1 << 20         # bytes the write-ahead log may keep after a checkpoint
SEEN_KEPT = 30 * 86400            # seconds a handled event's id is kept (commands older are refused)
PRUNE_EVERY = 1_000               # claims between two prunings of seen_events
SCRUBBED_KEY = "store_scrubbed"  # set once the database was vacuumed with secure_delete on
_CORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen_events (
    event_id TEXT PRIMARY KEY, room_id TEXT NOT NULL, seen_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS seen_events_age ON seen_events(seen_at);
"""


class StoreDamaged(Exception):
    """SQLite found the database file damaged (not a database, a malformed page) while opening it."""


DAMAGE_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
CHECK_SUFFIX = ".check"       # next to the database: check it whole at the next open (damage was met)


def error_chain(exc: BaseException | None, depth: int = 6):
    """An error and the ones it wraps (its cause, or the one it was raised while handling), nearest first:
    a library's error around SQLite's (nio's crypto store raises peewee's), a step's around the store's."""
    while exc is not None and depth > 0:
        yield exc
        exc, depth = exc.__cause__ or exc.__context__, depth - 1


def is_damage(exc: BaseException | None) -> bool:
    """Whether an error (or one it wraps) is SQLite finding its file damaged."""
    return any(isinstance(error, sqlite3.DatabaseError) and getattr(error, "sqlite_errorcode", None) in DAMAGE_CODES
               for error in error_chain(exc))


def raised_through(exc: BaseException | None, in_file: Callable[[str], bool]) -> bool:
    """Whether an error (or one it wraps) passed through code whose file name `in_file` accepts."""
    for error in error_chain(exc):
        trace = error.__traceback__
        while trace is not None:
            if in_file(trace.tb_frame.f_code.co_filename):
                return True
            trace = trace.tb_next
    return False


def raised_by_store(exc: BaseException | None) -> bool:
    """Whether an error came through this module (the bot's own state database), not through another
    SQLite file (nio's crypto store, a service's database being dumped)."""
    return raised_through(exc, lambda name: name == __file__)


def mark_for_check(path: Path) -> None:
    """Damage was met while running: the next open reads the whole file first (PRAGMA quick_check)."""
    path.with_name(path.name + CHECK_SUFFIX).touch(mode=0o600)


def damage_in(check: list[str]) -> str | None:
    """The rows of PRAGMA quick_check: None when the file reads whole, else SQLite's words."""
    return None if check == ["ok"] else "; ".join(check)[:200]


def damage_read_whole(path: Path, rows: int = 5) -> str | None:
    """SQLite's words when a whole read of the file (read-only, beside whoever has it open) finds it
    damaged, else None; a file that is busy, or that this user may not read, is not damaged."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            found = [row[0] for row in db.execute(f"PRAGMA quick_check({rows})")]
        finally:
            db.close()
    except sqlite3.OperationalError:
        return None
    except sqlite3.DatabaseError as exc:
        return str(exc)[:200]
    return damage_in(found)


def set_aside(path: Path, now: float | None = None, why: str = "damaged") -> Path:
    """Rename a damaged database (and its -wal and -shm files) out of the way, keeping it for a look or a
    salvage; the new name, e.g. spbot.db.damaged-20261130T230102Z."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    aside = path.with_name(f"{path.name}.{why}-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.rename(aside.with_name(aside.name + suffix))
    path.with_name(path.name + CHECK_SUFFIX).unlink(missing_ok=True)
    return aside


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.db: aiosqlite.Connection | None = None
        self._claims = 0
        # One statement and its commit (or its fetch) at a time: with the connection shared by many
        # coroutines, another's open transaction or cursor would make a checkpoint fail ("database
        # table is locked") and leave a wiped secret's old pages in the write-ahead log.
        self._turn = asyncio.Lock()
        # Told of damage met by any statement once the bot runs (a command's or a feature's table that
        # opening does not read): (error) -> None; the bot stops and its next start sets the file aside.
        self.on_damage: Callable[[BaseException], Any] | None = None

    async def open(self) -> "Store":
        """Open (or create) the database, private to the bot: secrets written to it (queued passwords)
        are zeroed when overwritten, the write-ahead log is bounded and emptied at start, and the file
        and its -wal/-shm companions are 0600 whatever the umask. StoreDamaged when SQLite finds the file
        damaged (a locked, read-only or failing disk is an OperationalError, raised as it is)."""
        try:
            return await self._open()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise
            await self.close()
            raise StoreDamaged(str(exc)) from exc

    async def _open(self) -> "Store":
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created 0600 before SQLite opens it: SQLite gives -wal and -shm the database file's mode.
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.db = await aiosqlite.connect(self.path)
        self.db.row_factory = aiosqlite.Row
        await self.db.execute("PRAGMA secure_delete=ON")
        await self.db.execute("PRAGMA journal_mode=WAL")
        await self.db.execute("PRAGMA synchronous=NORMAL")
        await self.db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        await self._check_if_marked()
        await self.ensure_schema(_CORE_SCHEMA)
        await self.prune_seen()
        if await self.get(SCRUBBED_KEY) is None:     # pages freed before secure_delete was on
            await self.db.execute("VACUUM")
            await self.put(SCRUBBED_KEY, True)
        await self.checkpoint()
        for suffix in ("", "-wal", "-shm"):
            companion = self.path.with_name(self.path.name + suffix)
            if companion.exists():
                companion.chmod(0o600)
        return self

    async def _check_if_marked(self) -> None:
        """Damage met while running (mark_for_check) may lie in a table that opening does not read: the
        whole file is checked then, and a damaged one raised as such."""
        mark = self.path.with_name(self.path.name + CHECK_SUFFIX)
        if not mark.exists():
            return
        damage = damage_in([row[0] for row in await self.fetchall("PRAGMA quick_check(5)")])
        if damage is not None:
            raise sqlite3.DatabaseError(f"quick_check: {damage}")
        mark.unlink()

    @contextlib.asynccontextmanager
    async def _watched(self):
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if self.on_damage is not None and is_damage(exc):
                self.on_damage(exc)
            raise

    async def close(self) -> None:
        if self.db is not None:
            await self.db.close()
            self.db = None

    async def ensure_schema(self, sql: str) -> None:
        async with self._turn, self._watched():
            await self.db.executescript(sql)
            await self.db.commit()

    async def add_columns(self, table: str, columns: dict[str, str]) -> None:
        """Add columns a newer version needs to a table an older version created."""
        existing = {row["name"] for row in await self.fetchall(f"PRAGMA table_info({table})")}
        async with self._turn, self._watched():
            for name, declaration in columns.items():
                if name not in existing:
                    await self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
            await self.db.commit()

    async def _write(self, sql: str, params: Iterable[Any]) -> aiosqlite.Cursor:
        async with self._turn, self._watched():
            cursor = await self.db.execute(sql, tuple(params))
            await self.db.commit()
            return cursor

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement and commit; returns the number of rows changed."""
        return (await self._write(sql, params)).rowcount

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        """Run one statement for each row, committed together."""
        async with self._turn, self._watched():
            await self.db.executemany(sql, [tuple(row) for row in rows])
            await self.db.commit()

    async def insert(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one INSERT and commit; returns the new row's id."""
        return (await self._write(sql, params)).lastrowid

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async with self._turn, self._watched(), self.db.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        async with self._turn, self._watched(), self.db.execute(sql, tuple(params)) as cursor:
            return await cursor.fetchone()

    async def checkpoint(self) -> bool:
        """Copy the write-ahead log into the database file and empty it; False if a reader (another
        process: a backup's copy) kept it busy."""
        try:
            row = await self.fetchone("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError:
            return False
        return row is not None and row[0] == 0

    async def get(self, key: str, default: Any = None) -> Any:
        row = await self.fetchone("SELECT value FROM kv WHERE key = ?", (key,))
        return json.loads(row["value"]) if row else default

    async def put(self, key: str, value: Any) -> None:
        await self.execute("INSERT INTO kv(key, value) VALUES(?, ?) ON CONFLICT(key) "
                           "DO UPDATE SET value = excluded.value", (key, json.dumps(value)))

    async def claim_event(self, event_id: str, room_id: str, now: float) -> bool:
        """Record an event as handled; False if it was already (so nothing runs twice, across restarts)."""
        changed = await self.execute(
            "INSERT OR IGNORE INTO seen_events(event_id, room_id, seen_at) VALUES(?, ?, ?)",
            (event_id, room_id, now))
        self._claims += 1
        if self._claims % PRUNE_EVERY == 0:
            await self.prune_seen(now)
        return changed == 1

    async def prune_seen(self, now: float | None = None) -> None:
        """Forget handled events older than SEEN_KEPT: the table stays bounded; they are far older
        than any command the bot would still run."""
        await self.execute("DELETE FROM seen_events WHERE seen_at < ?", ((now or time.time()) - SEEN_KEPT,))

    # --- the inbox: how far the handling of each incoming event got (see spbot/inbox.py) --------

    async def open_inbox(self) -> None:
        await self.ensure_schema("""
            CREATE TABLE IF NOT EXISTS inbox (
                event_id TEXT PRIMARY KEY, room_id TEXT NOT NULL, sender TEXT NOT NULL,
                kind TEXT NOT NULL, state TEXT NOT NULL, since REAL NOT NULL);""")

    async def inbox_row(self, event_id: str) -> aiosqlite.Row | None:
        return await self.fetchone("SELECT * FROM inbox WHERE event_id = ?", (event_id,))

    async def inbox_set(self, event_id: str, room_id: str, sender: str, kind: str, state: str,
                        now: float) -> None:
        await self.execute(
            "INSERT INTO inbox(event_id, room_id, sender, kind, state, since) VALUES(?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(event_id) DO UPDATE SET state = excluded.state",
            (event_id, room_id, sender, kind, state, now))

    async def inbox_done(self, event_id: str) -> None:
        await self.execute("DELETE FROM inbox WHERE event_id = ?", (event_id,))

    async def inbox_rows(self, states: Iterable[str]) -> list[aiosqlite.Row]:
        states = list(states)
        marks = ", ".join("?" for _ in states)
        return await self.fetchall(f"SELECT * FROM inbox WHERE state IN ({marks}) ORDER BY since",
                                   states)

    async def is_claimed(self, event_id: str) -> bool:
        return await self.fetchone("SELECT 1 FROM seen_events WHERE event_id = ?", (event_id,)) is not None

    async def unclaim_event(self, event_id: str) -> None:
        """Undo a claim whose handling provably never acted (see the inbox's 'arrived' state)."""
        await self.execute("DELETE FROM seen_events WHERE event_id = ?", (event_id,))
