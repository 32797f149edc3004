"""The outbox's lanes (spbot/outbox.py): what is said for one admin's command waits behind no other
admin's flood, while each lane keeps its own order and an edit never leaves before its message."""
from __future__ import annotations

import asyncio

from aiohttp import ClientConnectionError

from spbot.outbox import speaking_for
from spbot.render import Reply

from .pipeline_kit import ROOM, Parts, until_sent

ALICE, BOB = "@alice:example.org", "@bob:example.org"


async def say(parts: Parts, sender: str, texts: list[str]) -> list[int]:
    async def in_lane() -> list[int]:
        speaking_for.set(sender)
        return [await parts.messenger.send(ROOM, Reply.text(text)) for text in texts]
    return await asyncio.create_task(in_lane())


async def test_a_flood_does_not_queue_another_admins_reply_behind_it(parts):
    client = parts.connection.client
    client.failures = [ClientConnectionError("down")]           # holds the queue while both are queued
    await say(parts, ALICE, [f"alice {n}" for n in range(10)])
    await say(parts, BOB, ["bob's answer"])
    bodies = [c["body"] for _, _, c in await until_sent(client, 11, timeout=10)]
    assert bodies.index("bob's answer") <= 1
    assert [b for b in bodies if b.startswith("alice")] == [f"alice {n}" for n in range(10)]


async def test_an_edit_stays_in_its_messages_lane_behind_it(parts):
    client = parts.connection.client
    client.failures = [ClientConnectionError("down")]
    [progress] = await say(parts, ALICE, ["step 1"])
    await say(parts, BOB, [f"bob {n}" for n in range(3)])
    await parts.messenger.edit(progress, Reply.text("step 2"))     # from the shared lane: follows its message
    sent = await until_sent(client, 5, timeout=10)
    bodies = [c.get("m.new_content", c)["body"] for _, _, c in sent]
    assert bodies.index("step 1") < bodies.index("step 2")
    assert [b for b in bodies if b.startswith("bob")] == ["bob 0", "bob 1", "bob 2"]
