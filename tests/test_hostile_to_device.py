"""Anyone on the homeserver (or a federating one) can send the bot's device a to-device message. nio raised
out of the sync on an encrypted one it could not read (a ciphertext that is not an Olm message, a room
key that is not a Megolm session key), and the homeserver gave the same message again at each try: one
request from a stranger made the bot deaf for good. Now such a message is dropped and logged, and the
bot goes on answering its admins (spbot/nio_fixes.py)."""
from __future__ import annotations

import base64
import json
import uuid

import pytest
import vodozemac

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
