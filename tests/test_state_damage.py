"""A damaged state database (spbot.db, as a failing disk leaves it): before, the bot stopped with a
traceback at every start and said nothing in the room. Now it sets the file aside, starts with an empty
one and tells the admins, ringing them (spbot/state_loss.py); and since its record of the commands it
already ran went with the file, no command sent before the loss runs, neither one answered before nor one
sent while it was stopped (the notice asks to send again what is still wanted). The device's key file
(nio's crypto store) damaged is another matter: the device is replaced, as when its keys are lost."""
from __future__ import annotations

import asyncio
import json
import shutil
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import wait_answering
from .test_approvals import request_for
from .test_replay_and_edits import REPLAY_REFUSAL, marked, refusal_to, token

pytestmark = pytest.mark.matrix


def damage(database: Path) -> None:
    """Every page but the first (the schema) overwritten with noise: "database disk image is malformed"."""
    data = bytearray(database.read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)
    database.write_bytes(bytes(data))


def damage_tables(database: Path, keep: set[str]) -> list[str]:
    """The root page of every table but `keep` overwritten with noise: opening the store reads only
    what it keeps, so the damage is met later (when the bot starts its parts)."""
    with sqlite3.connect(database) as db:
        size = db.execute("PRAGMA page_size").fetchone()[0]
        tables = db.execute("SELECT name, rootpage FROM sqlite_master WHERE type = 'table'").fetchall()
    db.close()
    damaged = [(name, page) for name, page in tables if name not in keep and page > 1]
    with open(database, "r+b") as file:
        for _, page in damaged:
            file.seek((page - 1) * size)
            file.write(os.urandom(size))
    return [name for name, _ in damaged]


async def test_a_damaged_state_database_is_set_aside_told_and_nothing_runs_twice(make_bot, alice):
    bot = await make_bot("damaged-state")
    bot.stop()             # a window long enough for a restart: the commands below must still be fresh
    bot.config_path.write_text(bot.config_path.read_text().replace('max_command_age = "8s"',
                                                                   'max_command_age = "5m"'))
    bot.start()
    await wait_answering(alice, bot)
    answered = await alice.send(bot.room_id, "!ping")
    await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == answered, timeout=30)
    bot.stop()
    waiting = await alice.send(bot.room_id, "!ping")             # sent while the bot is stopped
    database = bot.state_dir / "spbot.db"
    damage(database)
    damaged = database.read_bytes()
    doctor = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "spbot", "doctor", "--config",
                                                      str(bot.config_path)], capture_output=True, text=True)
    assert f"[warn] the state database {database} is damaged" in doctor.stdout, doctor.stdout
    assert "[ok  ] the key file" in doctor.stdout, doctor.stdout

    bot.start()
    told = await alice.wait_for(lambda e: e.sender == bot.user_id and "state database was damaged" in e.body,
                                timeout=60)
    assert alice.user_id in told.content["m.mentions"]["user_ids"]          # it rings
    aside = next(bot.state_dir.glob("spbot.db.damaged-*"))
    assert f"set it aside as {aside}" in told.body and aside.read_bytes() == damaged
    assert "Commands sent before now are not run" in told.body

    fresh = await alice.command(bot.room_id, "!ping", bot.user_id, timeout=30)   # handled after the older ones
    assert fresh.body.startswith("pong")
    await asyncio.sleep(1)
    replies = [e.reply_to for e in alice.events if e.sender == bot.user_id]
    assert replies.count(answered) == 1, "a command answered before the loss ran again"
    assert replies.count(waiting) == 0, "a command sent before the loss ran"
    assert "state_database_damaged" in bot.log() and "Traceback" not in bot.log().split("spbot.bot stopping")[-1]


async def test_damage_met_after_opening_stops_the_bot_and_the_next_start_sets_the_file_aside(make_bot, alice):
    """Damage in a table that opening does not read: the start that meets it stops with a failure (exit
    status 1, which systemd's Restart=on-failure restarts) and marks the file; the next start checks the
    whole file, sets it aside and tells the admins."""
    bot = await make_bot("damaged-later")
    bot.stop()
    database = bot.state_dir / "spbot.db"
    assert "outbox" in damage_tables(database, keep={"kv", "seen_events"})
    bot.start()
    process = bot.process.process
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert process.poll() == 1, "the bot did not stop with a failure:\n" + bot.log()[-2000:]
    assert (bot.state_dir / "spbot.db.check").exists()
    assert "state_database_damaged" in bot.log()

    started = time.monotonic()
    bot.start()                                         # as systemd's Restart=on-failure does
    told = await alice.wait_for(lambda e: e.sender == bot.user_id and e.received > started
                                and "state database was damaged" in e.body, timeout=60)
    assert "quick_check" in told.body and alice.user_id in told.content["m.mentions"]["user_ids"]
    assert not (bot.state_dir / "spbot.db.check").exists()
    await wait_answering(alice, bot)


async def test_damage_met_by_a_command_stops_the_bot_and_the_next_start_tells_the_admins(make_bot, alice):
    """A table only one command uses, damaged while the bot was stopped: the start does not read it, the
    command meets it. Before, the command answered "an internal error" and the bot went on writing to a
    damaged file without a word of it; now it stops for its supervisor, whose restart sets the file aside
    and rings the admins."""
    bot = await make_bot("damaged-command-table")
    assert (await alice.command(bot.room_id, "!note one", bot.user_id)).body == "noted one (1 in all)"
    bot.stop()
    database = bot.state_dir / "spbot.db"
    with sqlite3.connect(database) as db:                 # the log folded in: the damage is in the file
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    keep = {name for name in table_names(database) if name != "test_notes"}
    assert damage_tables(database, keep=keep) == ["test_notes"]
    bot.start()
    await wait_answering(alice, bot)
    await alice.send(bot.room_id, "!note two")
    assert await asyncio.to_thread(bot.process.process.wait, 60) == 1, bot.log()[-2000:]
    assert "state_database_damaged" in bot.log() and (bot.state_dir / "spbot.db.check").exists()
    started = time.monotonic()
    bot.start()
    told = await alice.wait_for(lambda e: e.sender == bot.user_id and e.received > started
                                and "state database was damaged" in e.body, timeout=60)
    assert alice.user_id in told.content["m.mentions"]["user_ids"]
    assert (await alice.command(bot.room_id, "!note three", bot.user_id)).body == "noted three (1 in all)"


def table_names(database: Path) -> set[str]:
    with sqlite3.connect(database) as db:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    return names


async def test_a_damaged_crypto_store_is_set_aside_and_a_new_device_takes_over(make_bot, alice):
    """nio's crypto store (the device's keys, another SQLite file) damaged: before, the bot stopped at every
    start, and took the damage for its state database's. Now the file is set aside and the device replaced
    as when its keys are lost: a new device, cross-signed, the old one deleted, the admins told; the state
    database is not touched."""
    bot = await make_bot("damaged-keys")
    old = json.loads((bot.state_dir / "credentials.json").read_text())["device_id"]
    bot.stop()
    keys = bot.state_dir / "crypto" / f"{bot.user_id}_{old}.db"
    damage(keys)
    for wal in keys.parent.glob(keys.name + "-wal"):
        wal.write_bytes(os.urandom(wal.stat().st_size))
    started = time.monotonic()
    bot.start()
    told = await alice.wait_for(lambda e: e.sender == bot.user_id and e.received > started
                                and "encryption keys" in e.body, timeout=90)
    new = json.loads((bot.state_dir / "credentials.json").read_text())["device_id"]
    assert new != old and f"for device {old} was damaged" in told.body and f"new device {new}" in told.body
    assert f"deleted {old}" in told.body and alice.user_id in told.content["m.mentions"]["user_ids"]
    assert list(keys.parent.glob(keys.name + ".damaged-*")) and not keys.exists()
    assert not list(bot.state_dir.glob("spbot.db.damaged-*")) and not (bot.state_dir / "spbot.db.check").exists()
    await wait_answering(alice, bot)


async def test_damage_met_in_the_key_file_while_running_replaces_the_device_at_the_next_start(make_bot, alice):
    """The index nio reads only when it saves a room key, damaged while the bot was stopped: the start
    reads the key file's tables whole and goes on; the next new room key, an admin's here, meets the
    damage in a sync step (the bot's own next one would meet it while sent). Before, that step failed for
    ever (deaf to every new key, silent); now the bot marks the file and stops for its supervisor, and
    the next start finds the damage, sets the file aside and replaces the device."""
    bot = await make_bot("damaged-keys-later")
    old = json.loads((bot.state_dir / "credentials.json").read_text())["device_id"]
    bot.stop()
    keys = bot.state_dir / "crypto" / f"{bot.user_id}_{old}.db"
    with sqlite3.connect(keys) as db:                     # the log folded in: the damage is in the file
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    damage_page(keys, "sqlite_autoindex_megolminboundsessions_1")
    bot.start()
    alice.client.invalidate_outbound_session(bot.room_id)
    await alice.send(bot.room_id, "!ping")                # a new room key, to be saved
    assert await asyncio.to_thread(bot.process.process.wait, 90) == 1, bot.log()[-2000:]
    assert "crypto_store_damaged step=sync" in bot.log() and keys.with_name(keys.name + ".check").exists()
    started = time.monotonic()
    bot.start()
    told = await alice.wait_for(lambda e: e.sender == bot.user_id and e.received > started
                                and "encryption keys" in e.body, timeout=90)
    new = json.loads((bot.state_dir / "credentials.json").read_text())["device_id"]
    assert new != old and f"for device {old} was damaged" in told.body
    assert list(keys.parent.glob(keys.name + ".damaged-*")) and not keys.exists()
    await wait_answering(alice, bot)


def damage_page(database: Path, name: str) -> None:
    """The root page of one table or index overwritten with noise."""
    with sqlite3.connect(database) as db:
        size = db.execute("PRAGMA page_size").fetchone()[0]
        page = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
    db.close()
    with open(database, "r+b") as file:
        file.seek((page - 1) * size)
        file.write(os.urandom(size))


async def test_a_damaged_credentials_file_is_recovered_as_the_same_device(make_bot, alice):
    """credentials.json unreadable (or deleted by hand) while the crypto store holds the device: before,
    the bot logged in as a new device without a word, and the old one stayed on the homeserver. Now it
    logs in with its password as the same device again and keeps its keys."""
    bot = await make_bot("damaged-credentials")
    old = json.loads((bot.state_dir / "credentials.json").read_text())
    bot.stop()
    (bot.state_dir / "credentials.json").write_bytes(b"\x00{\"user_id\": garbage")
    bot.start()
    await wait_answering(alice, bot)
    now = json.loads((bot.state_dir / "credentials.json").read_text())
    assert now["device_id"] == old["device_id"] and now["access_token"] != old["access_token"]
    log = bot.log().split("spbot.bot started")[-2]           # the second start, up to its "started"
    assert "credentials_recovered" in log and "login_password" not in log, log[-2000:]
    assert now["access_token"] not in bot.log()


async def test_a_missing_state_database_is_told_and_no_old_ciphertext_runs_again(make_bot, alice):
    """spbot.db deleted while the device's keys stay (by hand, a state directory restored in part): before,
    the bot started afresh in silence, ran again the commands of the last minutes, and an admin's old
    command re-posted as a new event ran again (the record of used Megolm indexes went with the file,
    the room keys did not). Now it says so, runs nothing sent before, and learns the used indexes back
    from the room's history, binding each to the oldest event that used it."""
    bot = await make_bot("missing-state")
    mark, original, ciphertext = await marked(alice, bot)
    early_replay = await alice.send_unencrypted(bot.room_id, "m.room.encrypted", ciphertext)
    assert REPLAY_REFUSAL in (await refusal_to(alice, bot, early_replay)).body
    _, _, lost_request = await request_for(alice, bot, f"!danger {token()}")
    bot.stop()
    for path in bot.state_dir.glob("spbot.db*"):
        path.unlink()
    doctor = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "spbot", "doctor", "--config",
                                                      str(bot.config_path)], capture_output=True, text=True)
    assert "spbot.db is missing beside the device's key files" in doctor.stdout, doctor.stdout

    bot.start()
    told = await alice.wait_for(lambda e: e.sender == bot.user_id and "was missing when I started" in e.body,
                                timeout=60)
    assert alice.user_id in told.content["m.mentions"]["user_ids"]          # it rings
    assert "Commands sent before now are not run" in told.body
    replay = await alice.send_unencrypted(bot.room_id, "m.room.encrypted", ciphertext)
    assert REPLAY_REFUSAL in (await refusal_to(alice, bot, replay)).body
    fresh = await alice.command(bot.room_id, f"!mark {mark}", bot.user_id, timeout=30)
    assert fresh.body == f"marked {mark}"
    assert bot.marks().count(mark) == 2, "the original ran again, or a copy of it ran"
    _, _, request = await request_for(alice, bot, f"!danger {token()}")
    assert request > lost_request, f"request #{lost_request}, forgotten with the file, was handed out again"
    log = bot.log().split("spbot.bot stopping")[-1]
    assert "state_database_missing" in log and "replay_guard_relearned" in log
    assert any("replayed_message_refused" in line and f"first_event_id={original}" in line
               for line in log.splitlines()), "the pair was not bound to the oldest event"


async def test_damage_met_while_sending_keeps_the_reply_for_the_next_device(make_bot, alice):
    """The index nio reads only when it saves an Olm session, damaged while the bot was stopped: after a
    start the bot's first message shares a new room key over Olm, and meets the damage while it is sent,
    not in a sync step. Before, the outbox took it for a bug of its own, tried ten times and dropped the
    reply for good, and the bot ran on unable to send; now it stops, and the next start's new device
    sends the reply."""
    bot = await make_bot("damaged-keys-send")
    old = json.loads((bot.state_dir / "credentials.json").read_text())["device_id"]
    bot.stop()
    keys = bot.state_dir / "crypto" / f"{bot.user_id}_{old}.db"
    with sqlite3.connect(keys) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    damage_page(keys, "sqlite_autoindex_olmsessions_1")
    bot.start()
    command_id = await alice.send(bot.room_id, "!ping")          # with the room key the bot holds
    assert await asyncio.to_thread(bot.process.process.wait, 90) == 1, bot.log()[-2000:]
    assert "crypto_store_damaged step=send" in bot.log(), bot.log()[-3000:]
    bot.start()
    reply = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id, timeout=90)
    assert reply.body.startswith("pong"), reply.body
    new = json.loads((bot.state_dir / "credentials.json").read_text())["device_id"]
    assert new != old and list(keys.parent.glob(keys.name + ".damaged-*"))


EARLIER_STATE = "I started without my earlier state"


async def test_a_lost_state_directory_does_not_hand_out_the_rooms_numbers_again(make_bot, alice, bob):
    """The whole state directory lost (a reinstall, /var/lib/spbot deleted): the bot logs in again from its
    password file as a new device, with none of its keys. Before, its request numbers started again at
    #1, and `!approve 1` typed from the older request message approved the new request #1. Its messages
    before the loss are in the room, readable or not: the numbers now start past them."""
    bot = await make_bot("lost-state-dir")
    _, _, lost_request = await request_for(alice, bot, f"!danger {token()}")
    old_device = json.loads((bot.state_dir / "credentials.json").read_text())["device_id"]
    bot.stop()
    lost_at = time.monotonic()
    shutil.rmtree(bot.state_dir)
    bot.state_dir.mkdir(mode=0o700)

    bot.start()
    await wait_answering(alice, bot)
    assert json.loads((bot.state_dir / "credentials.json").read_text())["device_id"] != old_device
    mark = token()
    _, _, request = await request_for(alice, bot, f"!danger {mark}")
    assert request > lost_request, f"request #{lost_request}, lost with the state, was handed out again"
    refused = await bob.command(bot.room_id, f"!approve {lost_request}", bot.user_id)
    assert f"#{lost_request}" in refused.body and mark not in bot.marks(), refused.body
    assert "numbers_skipped" in bot.log()

    # The admins are told, ringing, once: not at the bot's first start, and not again at the next.
    told = [e for e in alice.events if e.sender == bot.user_id and EARLIER_STATE in e.body]
    assert len(told) == 1 and told[0].received > lost_at, [e.body for e in told]
    assert "!backup list" in told[0].body and {alice.user_id, bob.user_id} <= set(told[0].content["m.mentions"]["user_ids"])
    bot.stop()
    bot.start()
    await wait_answering(alice, bot)
    assert len([e for e in alice.events if e.sender == bot.user_id and EARLIER_STATE in e.body]) == 1
