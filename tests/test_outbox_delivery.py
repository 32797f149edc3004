"""The outbox through the real path: a bot process, the session's Synapse stopped and started, and
alice's E2EE client. A reply queued while the homeserver is down survives restarts of the bot (clean
and kill -9) for as long as the homeserver stays away and arrives once; an answer larger than a Matrix
event arrives shortened, readable."""
from __future__ import annotations

import asyncio
import json
import secrets
import signal
import sqlite3
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .conftest import TestBot

pytestmark = pytest.mark.matrix

TIMEOUT = 30
MATRIX_EVENT_LIMIT = 65536


@pytest.fixture(scope="module")
async def outbox_bot(make_bot) -> TestBot:
    return await make_bot("outbox")


def outbox_rows(bot: TestBot, like: str) -> list[dict]:
    db = sqlite3.connect(f"file:{bot.state_dir / 'spbot.db'}?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT id, event_id, sent_at, failed FROM outbox "
                                            "WHERE content LIKE ?", (f"%{like}%",))]
    finally:
        db.close()


async def until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.1)


async def test_reply_waits_through_restarts_while_the_homeserver_is_down(synapse, alice, outbox_bot):
    bot = outbox_bot
    token = secrets.token_hex(4)
    event_id = await alice.send(bot.room_id, f"!sleep 4 {token}")
    await until(lambda: (bot.state_dir / f"started-{token}").exists(), TIMEOUT, "command started")
    synapse.stop()
    try:
        await until(lambda: outbox_rows(bot, "slept 4s"), 20, "reply queued")
        bot.stop(signal.SIGTERM)
        bot.start()
        await asyncio.sleep(25)          # longer than the old 20 s grace for "No such room"
        bot.stop(signal.SIGKILL)
        bot.start()
        await asyncio.sleep(5)
        [row] = outbox_rows(bot, "slept 4s")
        assert row["failed"] is None and row["sent_at"] is None, row
    finally:
        synapse.start()
    reply = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == event_id,
                                 timeout=120)
    assert reply.body == "slept 4s (exit 0)" and reply.decrypted
    await asyncio.sleep(3)
    assert len(alice.replies_to(event_id, bot.user_id)) == 1
    [row] = outbox_rows(bot, "slept 4s")
    assert row["event_id"] == reply.event_id and row["failed"] is None
    assert "send_failed_for_good" not in bot.log()


async def test_an_answer_too_large_for_one_event_arrives_shortened(alice, outbox_bot):
    bot = outbox_bot
    reply = await alice.command(bot.room_id, "!big 120", bot.user_id, timeout=TIMEOUT)
    assert reply.decrypted
    assert reply.body.startswith("line 00000 of a very long answer\nline 00001")
    assert reply.body.endswith("more than one Matrix message can hold)")
    assert "\n… (shortened: the whole answer was" in reply.body
    assert len(reply.body) > 20_000                  # as much as fits, not a stub
    assert len(json.dumps(reply.content)) < MATRIX_EVENT_LIMIT


async def test_a_40kb_command_gets_a_readable_answer(alice, outbox_bot):
    bot = outbox_bot
    huge = "x" * 40_000
    reply = await alice.command(bot.room_id, f"!mark {huge}", bot.user_id, timeout=TIMEOUT)
    assert reply.body.startswith(("marked x", "⚠️"))
    assert len(json.dumps(reply.content)) < MATRIX_EVENT_LIMIT
    # and the bot goes on answering
    assert (await alice.command(bot.room_id, "!ping", bot.user_id, timeout=TIMEOUT)).body
    assert "send_failed_for_good" not in bot.log()


async def test_the_homeservers_too_large_refusal_gets_a_short_notice_instead(alice, outbox_bot):
    """The size check counts the content once; a relation (copied in the clear beside the
    ciphertext) of 30 KB slips past it and Synapse answers M_TOO_LARGE: a notice goes instead."""
    bot = outbox_bot
    event_id = await alice.send(bot.room_id, "!oversize-relation")
    notice = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == event_id
                                  and e.body.startswith("⚠️ My answer was too long"), TIMEOUT)
    assert "Ask for less at a time" in notice.body and notice.decrypted
    await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == event_id
                         and e.body == "oversize queued", TIMEOUT)
    assert "send_too_large" in bot.log()
    assert "padding" not in json.dumps(notice.content)


async def test_a_room_the_bot_is_not_in_fails_that_message_only(alice, outbox_bot, synapse):
    bot = outbox_bot
    stranger = f"!notjoined{secrets.token_hex(4)}:{synapse.server_name}"
    first = await alice.command(bot.room_id, f"!say-in {stranger} hello", bot.user_id, timeout=TIMEOUT)
    assert first.body == f"queued for {stranger}"
    await until(lambda: any(r["failed"] for r in outbox_rows(bot, "hello")), TIMEOUT, "row failed")
    [row] = outbox_rows(bot, "hello")
    assert row["failed"] == f"the bot is not in room {stranger} any more" and row["event_id"] is None
    assert "send_failed_for_good" in bot.log() and stranger in bot.log()
    # the queue goes on
    assert (await alice.command(bot.room_id, "!ping", bot.user_id, timeout=TIMEOUT)).body
