"""A bot that cannot read its rooms says so (spbot/stuck_reading.py). Its syncs fail as a bug in reading
them would (the test command !unreadable breaks them inside the running bot for a few seconds, and
shortens the wait before telling from two minutes to two seconds): the admins are told in the room,
mentioned so that their phones ring, that commands do not reach it, and told again when it reads again;
then it answers as before."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.matrix


async def test_a_bot_that_cannot_read_tells_the_admins_and_when_it_reads_again(alice, make_bot):
    bot = await make_bot("stuck-reading")
    reply = await alice.command(bot.room_id, "!unreadable 8", bot.user_id, timeout=30)
    assert reply.body == "reading fails for 8 s", reply.body

    stuck = await alice.wait_for(lambda e: e.sender == bot.user_id and "cannot read new messages" in e.body,
                                 timeout=30)
    assert "ValueError" in stuck.body and "systemctl restart spbot" in stuck.body
    assert alice.user_id in stuck.content.get("m.mentions", {}).get("user_ids", [])
    await alice.wait_for(lambda e: e.sender == bot.user_id and "I read new messages again" in e.body,
                         timeout=60)
    reply = await alice.command(bot.room_id, "!ping", bot.user_id, timeout=30)
    assert reply.body.startswith("pong"), reply.body
    assert bot.log().count("sync_step_still_failing") >= 1
