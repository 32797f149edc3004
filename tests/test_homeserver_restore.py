"""A homeserver put back in time: its database restored from a backup (by the bot's own `!backup restore`
of the synapse service, or by hand) while the bot runs. The bot's sync position is then ahead of the
homeserver's: Synapse answers it with its own, older position and none of the events in between, and a
long poll from it waits for events past the old position while new ones arrive below it. Before, the
commands sent in that time were never delivered to the bot, and nobody was told; now it notices the
position going back and reads its rooms back over the last max_command_age."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spbot.chatclient import ChatClient
from spbot.devstack import Synapse, free_port

from .conftest import PASSWORD, TestBot, admin_room_on, wait_answering

pytestmark = pytest.mark.matrix


def copy_database(source: Path, target: Path) -> None:
    target.mkdir(exist_ok=True)
    for old in target.glob("homeserver.db*"):
        old.unlink()
    for path in source.glob("homeserver.db*"):
        shutil.copy2(path, target / path.name)


async def test_commands_sent_after_the_homeserver_went_back_in_time_are_answered(tmp_path):
    server = Synapse(tmp_path / "hs", free_port())
    server.configure()
    server.start()
    alice, bot_user, room = admin_room_on(server, "spbot-hs-restored", "Server admin (homeserver restored)")
    (tmp_path / "bot").mkdir()
    bot = TestBot(server, tmp_path / "bot", room, [alice], bot_user)
    bot.start()
    client = await ChatClient(server.url, alice, PASSWORD, tmp_path / "alice").start()
    try:
        await client.wait_joined(room, bot_user, timeout=60)
        await wait_answering(client, bot)
        server.stop()                                   # the backup: a copy of its database
        copy_database(server.dir, tmp_path / "backup")
        server.start()
        for _ in range(15):                             # the bot's position moves past the backup's
            await client.command(room, "!ping", bot_user, timeout=30)
        await client.stop()
        server.stop()                                   # the restore, while the bot runs
        copy_database(tmp_path / "backup", server.dir)
        server.start()
        # the admin's client is as lost as the bot (its position is ahead too): a new login, as after
        # clearing its cache
        client = await ChatClient(server.url, alice, PASSWORD, tmp_path / "alice-again").start()
        reply = await client.command(room, "!ping", bot_user, timeout=30)
        assert reply.body.startswith("pong"), reply.body
        assert "homeserver_went_back" in bot.log()
    finally:
        await client.stop()
        bot.stop()
        server.stop()
