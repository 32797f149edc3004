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

import pytest

from spbot.chatclient import ChatClient
from spbot.devstack import PlainSession

from .conftest import PASSWORD
from .hostile import (OLM, claim_every_one_time_key, device_keys, olm_room_key_with_a_bad_session_key,
                      send_to_device)

pytestmark = pytest.mark.matrix
FLOOD = 40


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
        for _ in range(FLOOD):                          # as many as anyone likes: the log stays bounded
            send_to_device(stranger, bot.user_id, device_id, {
                "algorithm": OLM, "sender_key": curve, "ciphertext": {curve: {"type": 1, "body": "AAAA"}}})
    finally:
        stranger.logout()

    for _ in range(2):                                  # the messages came, and the one after them too
        reply = await alice.command(bot.room_id, "!ping", bot.user_id, timeout=30)
        assert reply.body.startswith("pong"), reply.body
    log = bot.log()
    lines = [line for line in log.splitlines() if "to_device_unreadable" in line]
    assert len(lines) == 20 and "!!not base64" not in log, log[-3000:]     # a minute's worth, and no body
    assert any("session key" in line.lower() or "SessionKey" in line for line in lines[:2]), lines[:2]
    assert "sync_step_still_failing" not in log


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

