"""A state directory put back as it was earlier (a server snapshot restored after a bad upgrade, a backup
of /var/lib/spbot): the bot's state forgot the commands it handled since, and its older sync position
brings them again. Before, those still fresh enough (within max_command_age) ran a second time; now a
command the bot answered (its reply is in the room) is taken as handled, whatever its state says. When
the device's keys were put back too (its own later messages do not decrypt), the bot stops, and its next
start sets them aside and starts a new device: before, its replies could not be read for a while, or
at all (Olm sessions behind the ones its admins hold)."""
from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3

import pytest

from spbot.devstack import copy_bot_state

from .conftest import wait_answering
from .test_approvals import final_edit, request_for, result_reply, started_locked_sleep
from .test_replay_and_edits import token
from .test_state_damage import damage_page

pytestmark = pytest.mark.matrix


def device_of(bot) -> str:
    return json.loads((bot.state_dir / "credentials.json").read_text())["device_id"]


async def patient_bot(make_bot, alice, name: str):
    """A started bot whose commands stay fresh for 5 minutes: long enough a window that what was sent
    before a restore is still fresh after it."""
    bot = await make_bot(name)
    bot.stop()
    bot.config_path.write_text(bot.config_path.read_text().replace('max_command_age = "8s"',
                                                                   'max_command_age = "5m"'))
    bot.start()
    await wait_answering(alice, bot)
    return bot


async def answered_then_put_back(make_bot, alice, snapshot, name: str, names: tuple[str, ...] | None = None):
    """A bot that answered a `!mark` after a snapshot of its state, stopped and put back to the snapshot
    (all of its state, or only `names`); the mark."""
    bot = await patient_bot(make_bot, alice, name)
    bot.stop()
    copy_bot_state(bot.state_dir, snapshot)
    bot.start()
    await wait_answering(alice, bot)
    mark = token()
    assert (await alice.command(bot.room_id, f"!mark {mark}", bot.user_id)).body == f"marked {mark}"
    bot.stop()
    copy_bot_state(snapshot, bot.state_dir, *([names] if names else []))
    return bot, mark


async def test_a_restored_state_database_does_not_run_again_what_was_answered(make_bot, alice, tmp_path):
    bot, mark = await answered_then_put_back(make_bot, alice, tmp_path / "snapshot", "rolled-back-db",
                                             names=("spbot.db", "spbot.db-wal", "spbot.db-shm"))
    device = device_of(bot)
    bot.start()
    # the bot's messages are new to the homeserver: the put-back store makes row ids again, and their
    # transaction ids, the same as the messages after the snapshot, made it send nothing for them
    assert (await alice.command(bot.room_id, "!ping", bot.user_id, timeout=30)).body.startswith("pong")
    await asyncio.sleep(1)
    assert bot.marks().count(mark) == 1, "a command answered before the restore ran again"
    assert device_of(bot) == device, "the device was replaced though its keys were current"
    assert "handled_commands_recalled" in bot.log()
    fresh = await alice.command(bot.room_id, f"!mark {mark}", bot.user_id)
    assert fresh.body == f"marked {mark}" and bot.marks().count(mark) == 2


async def test_restored_keys_are_set_aside_for_a_new_device(make_bot, alice, tmp_path):
    bot, mark = await answered_then_put_back(make_bot, alice, tmp_path / "snapshot", "rolled-back-all")
    old = device_of(bot)
    bot.start()
    assert await asyncio.to_thread(bot.process.process.wait, 60) == 1      # stops for its supervisor
    assert "crypto_store_behind" in bot.log()
    bot.start()
    told = await alice.wait_for(lambda e: e.sender == bot.user_id and "older than my own messages" in e.body,
                                timeout=60)
    new = device_of(bot)
    assert new != old and f"new device {new}" in told.body
    assert list((bot.state_dir / "crypto").glob(f"*_{old}.db.behind-*"))
    await wait_answering(alice, bot)
    await asyncio.sleep(1)
    assert bot.marks().count(mark) == 1, "a command answered before the restore ran again"
    fresh = await alice.command(bot.room_id, f"!mark {mark}", bot.user_id)
    assert fresh.body == f"marked {mark}" and bot.marks().count(mark) == 2


async def test_restored_keys_without_a_state_database_are_set_aside_too(make_bot, alice, tmp_path):
    """The keys put back and spbot.db lost (no sync position to read forward from): the history read back
    for the replay guard finds the device's own later messages undecryptable, as the forward read would."""
    bot, mark = await answered_then_put_back(make_bot, alice, tmp_path / "snapshot", "rolled-back-lost")
    old = device_of(bot)
    for path in bot.state_dir.glob("spbot.db*"):
        path.unlink()
    bot.start()
    assert await asyncio.to_thread(bot.process.process.wait, 60) == 1
    bot.start()
    told = await alice.wait_for(lambda e: e.sender == bot.user_id and "older than my own messages" in e.body,
                                timeout=60)
    assert device_of(bot) != old and f"new device {device_of(bot)}" in told.body
    await wait_answering(alice, bot)
    assert bot.marks().count(mark) == 1


async def test_damage_met_while_recalling_answered_commands_is_a_state_loss(make_bot, alice, tmp_path):
    """The put-back state database damaged where only the recall of answered commands writes (the index
    of handled events): the bot stops for its supervisor and marks the file, its next start sets it aside
    and tells the admins, and the command answered before the restore does not run again. Before, the
    read ran where a damaged store was not looked for: the bot exited at every start and told no one."""
    bot, mark = await answered_then_put_back(make_bot, alice, tmp_path / "snapshot", "rolled-back-damaged",
                                             names=("spbot.db", "spbot.db-wal", "spbot.db-shm"))
    database = bot.state_dir / "spbot.db"
    with sqlite3.connect(database) as db:                 # the put-back copy's log folded in first
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    damage_page(database, "sqlite_autoindex_seen_events_1")
    bot.start()
    assert await asyncio.to_thread(bot.process.process.wait, 60) == 1, bot.log()[-2000:]
    assert "state_database_damaged" in bot.log() and (bot.state_dir / "spbot.db.check").exists()
    bot.start()
    told = await alice.wait_for(lambda e: e.sender == bot.user_id and "state database was damaged" in e.body,
                                timeout=60)
    assert alice.user_id in told.content["m.mentions"]["user_ids"]
    await wait_answering(alice, bot)
    await asyncio.sleep(1)
    assert bot.marks().count(mark) == 1, "a command answered before the restore ran again"


async def test_an_approval_given_after_the_snapshot_does_not_run_the_command_again(make_bot, alice, bob, tmp_path):
    """A dangerous command requested before a snapshot of the state and approved (✅) after it: the put-back
    state holds the request as still waiting, and the older sync position brings the ✅ again."""
    bot = await patient_bot(make_bot, alice, "rolled-back-vote")
    mark = token()
    command_id, message, _ = await request_for(alice, bot, f"!danger {mark}")
    bot.stop()
    snapshot = tmp_path / "snapshot"
    copy_bot_state(bot.state_dir, snapshot)
    bot.start()
    await wait_answering(alice, bot)
    await bob.react(bot.room_id, message.event_id, "✅")
    await result_reply(alice, command_id, bot, f"danger done {mark}")
    bot.stop()
    copy_bot_state(snapshot, bot.state_dir, ("spbot.db", "spbot.db-wal", "spbot.db-shm"))
    bot.start()
    await wait_answering(alice, bot)
    await asyncio.sleep(2)
    assert bot.marks().count(mark) == 1, "an approval given before the restore ran the command again"


async def test_an_alert_offer_taken_after_the_snapshot_is_not_taken_again(make_bot, alice, bob, erin, tmp_path):
    """A ✅ on an alert's offer given after a snapshot of the state: the put-back state holds the offer as
    open, and the older sync position brings the ✅ again. Before, it opened the offered command again."""
    bot = await patient_bot(make_bot, alice, "rolled-back-offer")
    mark = token()
    await alice.command(bot.room_id, f"!alert-offer {mark}", bot.user_id)
    alert = await alice.wait_for(lambda e: e.sender == bot.user_id and f"test condition {mark}" in e.body)
    bot.stop()
    snapshot = tmp_path / "snapshot"
    copy_bot_state(bot.state_dir, snapshot)
    bot.start()
    await wait_answering(alice, bot)

    def requests() -> list:
        return [e for e in alice.events if e.sender == bot.user_id and e.reply_to == alert.event_id
                and e.body.startswith("🔐 Request #")]
    await bob.react(bot.room_id, alert.event_id, "✅")
    await alice.wait_for(lambda e: bool(requests()), timeout=30)
    rid = int(re.match(r"🔐 Request #(\d+)", requests()[0].body).group(1))
    await erin.command(bot.room_id, f"!approve {rid}", bot.user_id)
    await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == alert.event_id
                         and f"danger done {mark}" in e.body)
    bot.stop()
    copy_bot_state(snapshot, bot.state_dir, ("spbot.db", "spbot.db-wal", "spbot.db-shm"))
    bot.start()
    await wait_answering(alice, bot)
    await asyncio.sleep(2)
    assert len(requests()) == 1, "the ✅ given before the restore opened the offered command again"
    assert bot.marks().count(mark) == 1


def sync_position(bot) -> str:
    """The stored sync position, as the kv table holds it (JSON)."""
    with sqlite3.connect(f"file:{bot.state_dir / 'spbot.db'}?mode=ro", uri=True) as db:
        [value] = db.execute("SELECT value FROM kv WHERE key = 'sync_position'").fetchone()
    db.close()
    return value


async def job_number(alice, bot, seconds: float = 2) -> int:
    """The number of a job started now: a second of the same locked command is refused with it."""
    first = token()
    first_id = await started_locked_sleep(alice, bot, seconds, first)
    refused = await alice.command(bot.room_id, f"!locked-sleep 1 {token()}", bot.user_id)
    await result_reply(alice, first_id, bot, f"locked sleep done {first}")
    return int(re.search(r"already under way as job #(\d+)", refused.body).group(1))


async def test_numbers_the_room_saw_after_the_snapshot_are_not_handed_out_again(make_bot, alice, bob, tmp_path):
    """Request and job numbers handed out after a snapshot of the state: the put-back state handed them out
    again, and `!approve N` typed from the older request message approved the new request #N."""
    bot = await patient_bot(make_bot, alice, "rolled-back-numbers")
    bot.stop()
    snapshot = tmp_path / "snapshot"
    copy_bot_state(bot.state_dir, snapshot)
    bot.start()
    await wait_answering(alice, bot)
    _, _, lost_request = await request_for(alice, bot, f"!danger {token()}")
    lost_job = await job_number(alice, bot)
    bot.stop()
    assert "numbers_skipped" not in bot.log(), "a plain restart skipped numbers"
    copy_bot_state(snapshot, bot.state_dir, ("spbot.db", "spbot.db-wal", "spbot.db-shm"))
    bot.start()
    await wait_answering(alice, bot)
    mark = token()
    command_id, _, request = await request_for(alice, bot, f"!danger {mark}")
    assert request > lost_request, f"request #{lost_request} was handed out again"
    assert await job_number(alice, bot) > lost_job, f"job #{lost_job} was handed out again"
    refused = await bob.command(bot.room_id, f"!approve {lost_request}", bot.user_id)
    assert f"#{lost_request}" in refused.body and mark not in bot.marks(), refused.body
    await bob.command(bot.room_id, f"!approve {request}", bot.user_id)
    await result_reply(alice, command_id, bot, f"danger done {mark}")
    assert "numbers_skipped" in bot.log()


async def test_a_job_that_finished_after_the_snapshot_is_not_told_as_cut_short(make_bot, alice, bob, tmp_path):
    """The state saved while an approved job ran (a server snapshot taken during an upgrade, say), put back
    after the job finished: before, the bot said the job was interrupted, rang its asker, and edited its
    message and its request's in the room from done to interrupted. The room shows how it ended; the bot
    now leaves it so."""
    bot = await patient_bot(make_bot, alice, "rolled-back-job")
    mark = token()
    command_id, request, rid = await request_for(alice, bot, f"!danger-slow 4 {mark}")
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    progress = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                                    and "⏳ !danger-slow — job #" in e.body)
    await asyncio.sleep(1)
    snapshot = sqlite3.connect(tmp_path / "spbot.db")
    with sqlite3.connect(f"file:{bot.state_dir / 'spbot.db'}?mode=ro", uri=True) as running:
        running.backup(snapshot)          # consistent while the bot runs, as a filesystem snapshot is
    snapshot.close()
    await result_reply(alice, command_id, bot, f"slow danger done {mark}")
    await final_edit(alice, progress, bot, "✅ !danger-slow")
    bot.stop()
    for path in bot.state_dir.glob("spbot.db*"):
        path.unlink()
    copy_bot_state(tmp_path, bot.state_dir, ("spbot.db",))
    bot.start()
    await wait_answering(alice, bot)
    await asyncio.sleep(2)
    told = [e for e in alice.events if e.sender == bot.user_id and "interrupted" in e.body]
    assert not told, "a job that finished after the snapshot was told as cut short: " + told[0].body
    edits = alice.edits_of(progress.event_id) + alice.edits_of(request.event_id)
    assert all("stopped" not in e.content["m.new_content"]["body"] for e in edits), "an edit said it stopped"
    assert "job_went_on_since" in bot.log() and bot.marks().count(mark) == 1


async def test_a_message_sent_just_before_a_kill_is_the_bots_own_not_a_lost_states(make_bot, alice, bob):
    """The bot killed after the homeserver took a message but before its outbox marked it sent: at the next
    start the room shows a message of the bot's that its outbox never marked, as a state put back would
    leave. Before, the job it belonged to was taken as gone on in that lost state: nothing told the admins
    it was cut short. The homeserver shows the sending device its transaction id, and the outbox knows it."""
    bot = await patient_bot(make_bot, alice, "killed-before-marking")
    mark = token()
    command_id, _, rid = await request_for(alice, bot, f"!danger-slow 60 {mark}")
    await asyncio.sleep(1)
    position = sync_position(bot)
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    progress = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                                    and "⏳ !danger-slow — job #" in e.body)
    bot.stop(signal.SIGKILL)
    # As a kill right after the homeserver took the message leaves it: not marked sent, and the sync
    # position from before it (the bot's next sync would have moved it past).
    with sqlite3.connect(bot.state_dir / "spbot.db") as db:
        unmarked = db.execute("UPDATE outbox SET event_id = NULL, sent_at = NULL WHERE event_id = ?",
                              (progress.event_id,)).rowcount
        db.execute("UPDATE kv SET value = ? WHERE key = 'sync_position'", (position,))
    db.close()
    assert unmarked == 1

    bot.start()
    told = await result_reply(alice, command_id, bot, "was interrupted", timeout=60)
    assert "job #" in told.body and "job_went_on_since" not in bot.log()
    await asyncio.sleep(2)
    progress_messages = [e for e in alice.events if e.sender == bot.user_id and e.reply_to == command_id
                         and "⏳ !danger-slow — job #" in e.body]
    assert len(progress_messages) == 1, "the message was sent a second time"
