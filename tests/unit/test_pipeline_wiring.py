"""The bot only wires the parts: built without a homeserver, each part has what it needs, and what
features use of the runtime (spbot/feature.py's Host) reaches the part that does it."""
from __future__ import annotations

from spbot.bot import Bot
from spbot.registry import Policy

from .pipeline_kit import OTHER_ROOM, ROOM, make_config, sample_registry


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
