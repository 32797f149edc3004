"""What counts as a damaged state database (spbot/store.py's is_damage), and what the watch does with it
(spbot/state_loss.py): the bot's own damaged file is marked for a whole check and the bot stopped with a
failure; another SQLite file's damage (nio's crypto store: spbot/matrix.py replaces the device) and a
busy, read-only or full disk (spbot/cannot_write.py tells of those) are none of that."""
from __future__ import annotations

import os
import sqlite3

import aiosqlite
import pytest

from spbot.state_loss import DamageWatch
from spbot.store import CHECK_SUFFIX, Store, is_damage


def real_error(tmp_path, damage: bool) -> sqlite3.Error:
    """SQLite's own error: from a file with its table's pages overwritten, or from a write to a read-only
    connection."""
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (v TEXT)")
        db.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 50)
    db.close()
    if damage:
        data = bytearray(path.read_bytes())
        data[4096:] = os.urandom(len(data) - 4096)
        path.write_bytes(bytes(data))
        uri = f"file:{path}"
    else:
        uri = f"file:{path}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        with pytest.raises(sqlite3.Error) as caught:
            if damage:
                db.execute("SELECT count(*), max(v) FROM t").fetchall()
            else:
                db.execute("INSERT INTO t VALUES ('y')")
        return caught.value
    finally:
        db.close()


def test_a_damaged_file_is_damage_even_wrapped(tmp_path):
    error = real_error(tmp_path, damage=True)
    assert is_damage(error)
    try:
        raise RuntimeError("a step failed") from error
    except RuntimeError as wrapped:
        assert is_damage(wrapped)


def test_a_read_only_disk_is_not_damage(tmp_path):
    assert not is_damage(real_error(tmp_path, damage=False))
    assert not is_damage(OSError(28, "No space left on device"))


async def store_error(tmp_path) -> sqlite3.Error:
    """The damage error as the bot's own store raises it (through spbot/store.py)."""
    real_error(tmp_path, damage=True)                 # leaves state.db damaged
    store = Store(tmp_path / "state.db")
    store.db = await aiosqlite.connect(tmp_path / "state.db")
    try:
        with pytest.raises(sqlite3.DatabaseError) as caught:
            await store.fetchall("SELECT count(*), max(v) FROM t")
        return caught.value
    finally:
        await store.close()


async def test_the_watch_marks_the_file_and_stops_the_bot_only_for_its_own_stores_damage(tmp_path):
    stopped = []
    database = tmp_path / "spbot.db"
    mark = database.with_name("spbot.db" + CHECK_SUFFIX)
    watch = DamageWatch(database, stopped.append)
    await watch.failed("handle_batch", OSError(5, "Input/output error"))      # a failing disk, told elsewhere
    (tmp_path / "other").mkdir()
    await watch.failed("handle_batch", real_error(tmp_path / "other", damage=True))   # another file's (nio's)
    assert stopped == [] and not mark.exists()
    error = await store_error(tmp_path)
    await watch.failed("handle_batch", error)
    assert stopped == [error] and mark.exists()
