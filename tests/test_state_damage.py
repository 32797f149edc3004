"""A damaged state database (spbot.db, as a failing disk leaves it): before, the bot stopped with a
traceback at every start and said nothing in the room. Now it sets the file aside, starts with an empty
one and tells the admins, ringing them (spbot/state_loss.py); and since its record of the commands it
already ran went with the file, no command sent before the loss runs, neither one answered before nor one
sent while it was stopped (the notice asks to send again what is still wanted)."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from .conftest import wait_answering

pytestmark = pytest.mark.matrix


def damage(database: Path) -> None:
    """Every page but the first (the schema) overwritten with noise: "database disk image is malformed"."""
    data = bytearray(database.read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)
    database.write_bytes(bytes(data))


async def test_a_damaged_state_database_is_set_aside_told_and_nothing_runs_twice(make_bot, alice):
    bot = await make_bot("damaged-state")
    bot.stop()             # a window long enough for a restart: the commands below must still be fresh
    bot.config_path.write_text(bot.config_path.read_text().replace('max_command_age = "8s"',
                                                                   'max_command_age = "5m"'))
    bot.start()
    await wait_answering(alice, bot)
    answered = await alice.send(bot.room_id, "!ping")
    await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == answered, timeout=30)
    bot.stop()
    waiting = await alice.send(bot.room_id, "!ping")             # sent while the bot is stopped
    database = bot.state_dir / "spbot.db"
    damage(database)
    damaged = database.read_bytes()

    bot.start()
    told = await alice.wait_for(lambda e: e.sender == bot.user_id and "state database was damaged" in e.body,
                                timeout=60)
    assert alice.user_id in told.content["m.mentions"]["user_ids"]          # it rings
    aside = next(bot.state_dir.glob("spbot.db.damaged-*"))
    assert f"set it aside as {aside}" in told.body and aside.read_bytes() == damaged
    assert "Commands sent before now are not run" in told.body

    fresh = await alice.command(bot.room_id, "!ping", bot.user_id, timeout=30)   # handled after the older ones
    assert fresh.body.startswith("pong")
    await asyncio.sleep(1)
    replies = [e.reply_to for e in alice.events if e.sender == bot.user_id]
    assert replies.count(answered) == 1, "a command answered before the loss ran again"
    assert replies.count(waiting) == 0, "a command sent before the loss ran"
    assert "state_database_damaged" in bot.log() and "Traceback" not in bot.log().split("spbot.bot stopping")[-1]
