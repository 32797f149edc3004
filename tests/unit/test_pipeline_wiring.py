"""The bot only wires the parts: built without a homeserver, each part has what it needs, and what
features use of the runtime (spbot/feature.py's Host) reaches the part that does it."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from spbot.bot import Bot
from spbot.registry import Policy

from .pipeline_kit import ALICE, OTHER_ROOM, ROOM, make_config, sample_registry


def test_the_bot_wires_the_parts_and_delegates_the_host_protocol(tmp_path):
    registry = sample_registry()
    bot = Bot(make_config(tmp_path, policies={"wipe": {"approvals": 2}}), registry=registry)
    assert bot.admin_rooms() == [ROOM, OTHER_ROOM] == bot.messenger.admin_rooms()
    assert bot.policy_for(registry.commands["wipe"]) == Policy(approvals=2)
    assert bot.dispatcher.approvals is bot.approvals and bot.dispatcher.executor is bot.executor
    assert bot.executor.jobs is bot.jobs and bot.approvals.job_finished in bot.jobs.on_finish
    assert bot.alerts.messenger is bot.messenger is bot.jobs.messenger is bot.approvals.messenger
    for name in ("notify", "direct_message", "admin_rooms", "spawn", "feature", "config", "store",
                 "scheduler", "alerts"):
        assert hasattr(bot, name), name


async def test_a_late_decrypted_command_that_keeps_failing_is_answered_not_retried_forever(tmp_path):
    """A command whose room key came after its batch is taken from the next batch's end (LateDecryption):
    an error there used to fail that batch and every one after it. Now it is guarded as in a batch:
    raised twice (the batch is tried again), then answered once, and the bot goes on."""
    bot = Bot(make_config(tmp_path), registry=sample_registry())
    await bot.store.open()
    await bot.inbox.start()
    await bot.outbox.start()
    try:
        room, event = SimpleNamespace(room_id=ROOM), SimpleNamespace(event_id="$late", sender=ALICE)
        await bot.inbox.set("$late", ROOM, ALICE, "command", "waiting")

        async def broken(room, event) -> None:
            await bot.inbox.begin(event.event_id, room.room_id, event.sender, "command")
            raise RuntimeError("a bug")
        bot.on_event = broken
        for _ in range(2):
            with pytest.raises(RuntimeError):
                await bot._take_late_event(room, event)
        await bot._take_late_event(room, event)
        rows = await bot.store.fetchall("SELECT content FROM outbox")
        assert [json.loads(r["content"])["body"] for r in rows] == [
            "⚠️ I could not handle this (an internal error, the details are in my log); nothing ran.\n"
            "Send it again; tell the other admins if it keeps failing."]
        assert await bot.inbox.state("$late") is None and await bot.store.is_claimed("$late")
    finally:
        await bot.outbox.stop()
        await bot.store.close()
