"""The screen step (spbot/screening.py) on a real store: which room messages become requests, and the one
short reply a sender gets when a command is refused. The replay guard sees decryptions through a stand-in
olm machine (the only part of nio's crypto it hooks)."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from nio import RoomMessageText

from spbot.room_upgrades import RoomUpgrades
from spbot.screening import Screen
from spbot.store import Store

from .pipeline_kit import ALICE, BOB, BOT, ROOM, STRANGER, make_config


def message(body: str, sender: str = ALICE, event_id: str = "$e1", age: float = 0.0,
            content: dict | None = None) -> RoomMessageText:
    return RoomMessageText.from_dict({
        "event_id": event_id, "sender": sender, "type": "m.room.message",
        "origin_server_ts": int((time.time() - age) * 1000),
        "content": content or {"msgtype": "m.text", "body": body}})


class StandInOlm:
    """Decrypts a stand-in Megolm event into its `inner` message, reporting its message index the way
    nio's olm machine does (through `message_index_ok`)."""

    def decrypt_megolm_event(self, event, room_id=None):
        self.message_index_ok(event.index, event)
        decrypted = message(event.body, event.sender, event.event_id)
        decrypted.decrypted = True
        return decrypted


def megolm(body: str, event_id: str, index: int, sender: str = ALICE):
    return SimpleNamespace(sender=sender, session_id="SESSION", event_id=event_id, room_id=ROOM, index=index,
                           body=body, source={"content": {"algorithm": "m.megolm.v1.aes-sha2"}})


@pytest.fixture
async def screen(tmp_path):
    store = await Store(tmp_path / "spbot.db").open()
    screen = Screen(make_config(tmp_path, max_command_age=60), store, BOT, first_start=time.time() - 3600,
                    upgrades=RoomUpgrades(store))
    screen.olm = StandInOlm()
    await screen.replay_guard.start(SimpleNamespace(olm=screen.olm))
    yield screen
    await store.close()


ROOM_OBJ = SimpleNamespace(room_id=ROOM)


async def test_what_is_not_a_command_for_this_bot_is_dropped_silently(screen):
    assert (await screen.message(ROOM_OBJ, message("!ping", sender=BOT))).reason == "own message"
    assert (await screen.message(SimpleNamespace(room_id="!elsewhere:x"), message("!ping"))).reason \
        == "room not configured"
    for body in ("hello", "! ping", "!"):
        verdict = await screen.message(ROOM_OBJ, message(body))
        assert (verdict.reason, verdict.reply, verdict.request) == ("not a command", None, None)


async def test_an_encrypted_command_from_an_admin_becomes_a_request_once(screen):
    decrypted = screen.olm.decrypt_megolm_event(megolm("!ping now", "$c1", index=0))
    verdict = await screen.message(ROOM_OBJ, decrypted)
    assert verdict.reply is None
    assert (verdict.request.sender, verdict.request.room_id, verdict.request.event_id, verdict.request.text) \
        == (ALICE, ROOM, "$c1", "!ping now")
    assert (await screen.message(ROOM_OBJ, decrypted)).reason == "already handled"


async def test_a_replayed_ciphertext_is_refused_with_one_reply(screen):
    await screen.message(ROOM_OBJ, screen.olm.decrypt_megolm_event(megolm("!ping", "$first", index=3)))
    replay = screen.olm.decrypt_megolm_event(megolm("!ping", "$copy", index=3))
    verdict = await screen.message(ROOM_OBJ, replay)
    assert verdict.request is None and verdict.reason == "replayed ciphertext"
    assert verdict.reply.body.startswith("⚠️ I did not run this: it is a copy of an earlier encrypted message")
    again = screen.olm.decrypt_megolm_event(megolm("!ping", "$copy2", index=3))
    assert (await screen.message(ROOM_OBJ, again)).reason == "replayed ciphertext, already told"


async def test_a_decryption_the_guard_did_not_see_is_not_trusted(screen):
    event = message("!ping", event_id="$unseen")
    event.decrypted = True
    verdict = await screen.message(ROOM_OBJ, event)
    assert verdict.request is None and verdict.reason == "no replay check"
    assert "could not check that it is not a replayed message" in verdict.reply.body


async def test_an_unencrypted_command_is_refused_with_a_reason(screen):
    verdict = await screen.message(ROOM_OBJ, message("!ping"))
    assert verdict.request is None and verdict.reason == "unencrypted"
    assert verdict.reply.body == ("⚠️ I did not run this: it was sent unencrypted.\nCommands are only taken "
                                  "from end-to-end encrypted messages; check that encryption is on in this "
                                  "room and in your client, then send it again.")


async def test_a_stranger_is_told_once_per_interval(screen):
    first = await screen.message(ROOM_OBJ, message("!ping", sender=STRANGER, event_id="$s1"))
    assert first.reply.body.startswith(f"Sorry {STRANGER}, I only take commands from this server's admins.")
    second = await screen.message(ROOM_OBJ, message("!ping", sender=STRANGER, event_id="$s2"))
    assert (second.reply, second.reason) == (None, "non-admin, already told")


async def test_old_commands_are_ignored_and_history_stays_silent(screen):
    late = await screen.message(ROOM_OBJ, message("!ping", event_id="$late", age=120))
    assert late.reply.body == "ignored: sent while I was offline, send it again if it is still wanted."
    history = await screen.message(ROOM_OBJ, message("!ping", sender=BOB, event_id="$old", age=7200))
    assert (history.reply, history.reason) == (None, "history from before the bot's first start")


async def test_an_edit_is_never_a_command(screen):
    edit = message("!ping", content={"msgtype": "m.text", "body": "!ping",
                                       "m.relates_to": {"rel_type": "m.replace", "event_id": "$e0"}})
    assert (await screen.message(ROOM_OBJ, edit)).reason == "edit of an earlier message"
