"""Anyone on the homeserver (or a federating one) can send the bot's device a to-device message. nio raised
out of the sync on an encrypted one it could not read (a ciphertext that is not an Olm message, a room
key that is not a Megolm session key), and the homeserver gave the same message again at each try: one
request from a stranger made the bot deaf for good. Now such a message is dropped and logged, and the
bot goes on answering its admins (spbot/nio_fixes.py).

Anyone can also claim the bot's one-time keys. nio never refilled them when a sync found none left (it
skipped a count of 0), so a burst of claims left the bot with no key for a device new to it: that
device's commands could never be read. Now the bot uploads new ones after that sync."""
from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest
import vodozemac

from spbot.chatclient import ChatClient
from spbot.devstack import PlainSession

from .conftest import PASSWORD

pytestmark = pytest.mark.matrix
OLM = "m.olm.v1.curve25519-aes-sha2"


def device_keys(stranger: PlainSession, user_id: str) -> tuple[str, str, str]:
    """The bot's device id and its curve25519 and ed25519 keys, as anyone may ask for them."""
    answer = stranger.http.post("/_matrix/client/v3/keys/query", json={"device_keys": {user_id: []}})
    answer.raise_for_status()
    (device_id, device), = answer.json()["device_keys"][user_id].items()
    keys = device["keys"]
    return device_id, keys[f"curve25519:{device_id}"], keys[f"ed25519:{device_id}"]


def send_to_device(stranger: PlainSession, user_id: str, device_id: str, content: dict) -> None:
    answer = stranger.http.put(f"/_matrix/client/v3/sendToDevice/m.room.encrypted/{uuid.uuid4().hex}",
                               json={"messages": {user_id: {device_id: content}}})
    answer.raise_for_status()


def olm_room_key_with_a_bad_session_key(stranger: PlainSession, user_id: str, device_id: str,
                                        curve: str, ed25519: str, stranger_id: str) -> dict:
    """A real Olm message (on a one-time key of the bot's, claimed as any client claims it) whose
    m.room_key holds a session key that is not one."""
    claim = stranger.http.post("/_matrix/client/v3/keys/claim",
                               json={"one_time_keys": {user_id: {device_id: "signed_curve25519"}}})
    claim.raise_for_status()
    (one_time_key,) = claim.json()["one_time_keys"][user_id][device_id].values()
    account = vodozemac.Account()
    session = account.create_outbound_session(vodozemac.Curve25519PublicKey.from_base64(curve),
                                              vodozemac.Curve25519PublicKey.from_base64(one_time_key["key"]))
    payload = {"type": "m.room_key", "sender": stranger_id, "recipient": user_id, "sender_device": "STRANGER",
               "recipient_keys": {"ed25519": ed25519}, "keys": {"ed25519": account.ed25519_key.to_base64()},
               "content": {"algorithm": "m.megolm.v1.aes-sha2", "room_id": "!nowhere:localhost",
                           "session_id": "nothing", "session_key": "AAAA"}}
    kind, body = session.encrypt(json.dumps(payload).encode()).to_parts()
    return {"algorithm": OLM, "sender_key": account.curve25519_key.to_base64(),
            "ciphertext": {curve: {"type": kind, "body": base64.b64encode(body).decode().rstrip("=")}}}


async def test_unreadable_to_device_messages_from_a_stranger_leave_the_bot_answering(synapse, people, alice,
                                                                                     make_bot):
    bot = await make_bot("hostile-to-device")
    dave = people["dave"].user_id                       # not in the bot's room, not an admin
    stranger = PlainSession.login(synapse.url, dave, PASSWORD)
    try:
        device_id, curve, ed25519 = device_keys(stranger, bot.user_id)
        send_to_device(stranger, bot.user_id, device_id, {   # not an Olm message at all
            "algorithm": OLM, "sender_key": curve, "ciphertext": {curve: {"type": 0, "body": "!!not base64"}}})
        send_to_device(stranger, bot.user_id, device_id,
                       olm_room_key_with_a_bad_session_key(stranger, bot.user_id, device_id, curve, ed25519, dave))
    finally:
        stranger.logout()

    for _ in range(2):                                  # the messages came, and the one after them too
        reply = await alice.command(bot.room_id, "!ping", bot.user_id, timeout=30)
        assert reply.body.startswith("pong"), reply.body
    log = bot.log()
    assert log.count("to_device_unreadable") == 2, log[-3000:]
    assert "sync_step_still_failing" not in log


def claim_every_one_time_key(stranger: PlainSession, user_id: str, device_id: str) -> int:
    for claimed in range(500):
        answer = stranger.http.post("/_matrix/client/v3/keys/claim",
                                    json={"one_time_keys": {user_id: {device_id: "signed_curve25519"}}})
        answer.raise_for_status()
        if not answer.json()["one_time_keys"].get(user_id, {}).get(device_id):
            return claimed
    raise AssertionError("the homeserver never ran out of the bot's one-time keys")


async def test_a_stranger_who_claims_every_one_time_key_does_not_shut_out_a_new_device(synapse, people, alice,
                                                                                      make_bot, tmp_path):
    bot = await make_bot("claimed-keys")
    stranger = PlainSession.login(synapse.url, people["dave"].user_id, PASSWORD)
    try:
        device_id, _, _ = device_keys(stranger, bot.user_id)
        await asyncio.sleep(3)                          # a quiet bot: its last sync counted them all
        assert claim_every_one_time_key(stranger, bot.user_id, device_id) >= 10
        reply = await alice.command(bot.room_id, "!ping", bot.user_id, timeout=30)   # a sync of the bot's since
        assert reply.body.startswith("pong"), reply.body
        phone = await ChatClient(synapse.url, alice.user_id, PASSWORD, tmp_path / "new-phone").start()
        try:                                            # a device new to the bot: it needs a one-time key
            reply = await phone.command(bot.room_id, "!ping", bot.user_id, timeout=30)
            assert reply.body.startswith("pong"), reply.body
        finally:
            await phone.stop()
    finally:
        stranger.logout()

