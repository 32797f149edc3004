"""A state directory lost whole (spbot/state_loss.py: note_earlier_state, tell_earlier_state): the bot's
own messages older than its state say so; a first start, a lost database (told by its own notice) and
messages of this state's own time do not. Told once, ringing the admins, on a real store and outbox."""
from __future__ import annotations

import time

import pytest

from spbot import state_loss

from .pipeline_kit import ALICE, BOB, Parts, until_sent

ADMINS = [ALICE, BOB]


@pytest.fixture
async def parts(tmp_path):
    parts = await Parts(tmp_path).start()
    await parts.store.put("first_start", time.time())
    yield parts
    await parts.stop()


async def told(parts: Parts) -> list[str]:
    await state_loss.tell_earlier_state(parts.store, parts.messenger, ADMINS)
    return [content["body"] for _, _, content in parts.sent]


@pytest.mark.parametrize("earliest", [None, "now"])
async def test_no_older_message_is_no_loss(parts, earliest):
    """A first start reads no message of its own; a message sent since this state began is its own."""
    await state_loss.note_earlier_state(parts.store, None if earliest is None else time.time() + 1, 3)
    assert await told(parts) == []


async def test_a_lost_database_is_told_by_its_own_notice_only(parts):
    await parts.store.put(state_loss.LOST_KEY, {"at": time.time(), "missing": "spbot.db"})
    await state_loss.note_earlier_state(parts.store, time.time() - 3600, 3)
    assert await told(parts) == []


async def test_older_messages_are_told_once_ringing_the_admins(parts):
    await state_loss.note_earlier_state(parts.store, time.time() - 3600, 3)
    await state_loss.tell_earlier_state(parts.store, parts.messenger, ADMINS)
    sent = await until_sent(parts.connection.client, len(parts.messenger.admin_rooms()))
    for _, _, content in sent:                  # one in each admin room
        assert "⚠️ I started without my earlier state: the room holds messages of mine" in content["body"]
        assert "Commands sent before now are not run" in content["body"] and "!backup list" in content["body"]
        assert set(content["m.mentions"]["user_ids"]) == set(ADMINS)
    await state_loss.note_earlier_state(parts.store, time.time() - 3600, 3)   # the next start: told already
    assert len(await told(parts)) == len(sent)
