"""The room key reaches the admins' devices even when sending it fails once (spbot/room_keys.py).

The bot talks to the test Synapse through a reverse proxy (tests/fault_proxy.py) that answers the first
to-device request carrying a room key for alice's device with 502, as a loaded proxy or homeserver does.
nio drops that failure silently and marks the key shared; without the check every later message of that
key would stay unreadable on alice's device. The bot must notice and share the key with her again before
its message goes out; when the homeserver keeps refusing, the message waits and goes out later with a
key that arrived. (nio also took such a refusal for a logout: spbot/nio_fixes.py.)"""
from __future__ import annotations

import os

import pytest

from .fault_proxy import FaultProxy

pytestmark = pytest.mark.matrix
TO_DEVICE_ROOM_KEY = "/sendToDevice/m.room.encrypted/"


@pytest.fixture(scope="module")
async def proxy(synapse):
    server = await FaultProxy(synapse.url).start()
    yield server
    await server.stop()


async def test_a_room_key_lost_on_the_way_is_shared_again_before_the_message(proxy, alice, make_bot):
    proxy.fail_next(TO_DEVICE_ROOM_KEY, containing=alice.device_id)
    bot = await make_bot("roomkeys", env={**os.environ, "SPBOT_HOMESERVER": proxy.url})   # waits for a pong

    assert proxy.failed == 1, "the fault was never injected: the test proves nothing"
    for text in ("!ping", "!status"):                       # later messages of the same key, too
        reply = await alice.command(bot.room_id, text, bot.user_id, timeout=30)
        assert reply.decrypted and reply.body, reply
    assert "room_key_not_delivered" in bot.log()
    assert "Not logged in" not in bot.log()                 # nio took the refusal for a logout (nio_fixes)


async def test_a_key_refused_again_and_again_holds_the_message_until_it_is_delivered(proxy, alice, bob, make_bot):
    proxy.fail_next(TO_DEVICE_ROOM_KEY, containing=bob.device_id, times=5)
    bot = await make_bot("roomkeys-held", env={**os.environ, "SPBOT_HOMESERVER": proxy.url})

    assert proxy.faults[-1].times == 0                      # all five refusals were used up
    log = bot.log()
    assert log.count("room_key_not_delivered") >= 5         # three tries, the message waits, more
    assert "send_retry" in log and "KeyNotDelivered" in log
    for client in (bob, alice):
        reply = await client.command(bot.room_id, "!ping", bot.user_id, timeout=30)
        assert reply.decrypted and reply.body.startswith("pong"), reply
    first = [e for e in alice.events if e.sender == bot.user_id and e.body.startswith("pong")]
    assert all(e.decrypted for e in first)
    assert "Not logged in" not in bot.log()
