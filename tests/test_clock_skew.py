"""A bot whose clock is off from its homeserver's (a box without a real-time clock after a power cut, a
server whose time sync failed) still judges a command's age right: from how long ago the homeserver says
it was sent (`unsigned.age`), not from the sender's server timestamp against its own clock. Before, a bot
an hour ahead answered every command with "sent while I was offline, send it again", forever; one an hour
behind ran commands sent long before it started. The bot runs as a real process whose clock alone is
moved (`time.time`, through a sitecustomize on its PYTHONPATH); the homeserver and the admins keep the
machine's."""
from __future__ import annotations

import asyncio
import os
import re
import uuid

import pytest

pytestmark = pytest.mark.matrix

SHIFTED_CLOCK = """
import time
_real = time.time
time.time = lambda: _real() + {offset}
time.time_ns = lambda: int((_real() + {offset}) * 1e9)
"""


def skewed_env(directory, offset: float) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(SHIFTED_CLOCK.format(offset=offset))
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(directory), env.get("PYTHONPATH", "")]))
    return env


async def test_a_bot_an_hour_ahead_runs_a_fresh_command(make_bot, alice, tmp_path):
    bot = await make_bot("clock-ahead", env=skewed_env(tmp_path / "clock", 3600))
    reply = await alice.command(bot.room_id, "!ping", bot.user_id, timeout=30)
    delay = re.fullmatch(r"pong \((\d+) ms since you sent it\)", reply.body)
    assert delay, reply.body
    assert int(delay.group(1)) < 60_000, reply.body           # not the hour the clocks are apart
    mark = uuid.uuid4().hex[:8]
    reply = await alice.command(bot.room_id, f"!mark {mark}", bot.user_id, timeout=30)
    assert mark in bot.marks(), reply.body


async def test_a_bot_an_hour_behind_ignores_a_command_sent_while_it_was_offline(make_bot, alice, tmp_path):
    bot = await make_bot("clock-behind", env=skewed_env(tmp_path / "clock", -3600))
    mark = uuid.uuid4().hex[:8]
    bot.stop()
    event_id = await alice.send(bot.room_id, f"!mark {mark}")
    await asyncio.sleep(9)            # the test bot's max_command_age is 8 s
    bot.start()
    reply = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == event_id, timeout=60)
    assert reply.body.startswith("ignored: sent while I was offline, send it again"), reply.body
    assert mark not in bot.marks()


async def test_a_fleet_bot_an_hour_ahead_does_not_take_its_peer_for_silent(synapse, people, alice, tmp_path):
    """Its peer's heartbeats are judged by when they were sent on its own clock: before, a bot an hour
    ahead reported every peer silent as soon as silent_after passed, and rang the admins for it."""
    from .fleet_kit import BOT_PASSWORD, Fleet, FleetBot, create_room, start_bots

    a = people["alice"].user_id
    bots = {host: FleetBot(host, synapse, synapse.register(f"spbot-skew-{host}", BOT_PASSWORD, admin=True),
                           [a]) for host in ("nas", "box")}
    room = create_room(synapse, a, [(synapse, fb.user_id) for fb in bots.values()], "Fleet (clock)")
    fleet = Fleet(room, bots)
    env = {"box": skewed_env(tmp_path / "clock", 3600)}
    await start_bots(fleet, tmp_path / "fleet", alice, default="nas", env=env, silent_after=10)
    try:
        started = len(alice.events)
        await asyncio.sleep(13)        # silent_after is 10 s (a loaded CI machine delays beats), heartbeats every second
        silent = [e.body for e in alice.events[started:] if "has not been heard from" in e.body]
        assert silent == []
        sent = await alice.send(room, "!fleet")
        reply = await alice.wait_for(lambda e: e.reply_to == sent and fleet.by_user(e.sender), timeout=15)
        assert "2 of 2 servers answered" in reply.body, reply.body
    finally:
        for fb in bots.values():
            fb.bot.stop()
