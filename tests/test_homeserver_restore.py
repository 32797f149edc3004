"""A homeserver put back in time: its database restored from a backup (by the bot's own `!backup restore`
of the synapse service, or by hand) while the bot runs. The bot's sync position is then ahead of the
homeserver's: Synapse answers it with its own, older position and none of the events in between, and a
long poll from it waits for events past the old position while new ones arrive below it. Before, the
commands sent in that time were never delivered to the bot, and nobody was told; now it notices the
position going back and reads its rooms back over the last max_command_age. A room key sent to the bot
between the restore and its next sync was dropped by the homeserver when that sync acknowledged the old
position; now the bot asks the homeserver's position first and syncs from none when it went back."""
from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from spbot.chatclient import ChatClient
from spbot.devstack import Synapse, free_port

from .conftest import PASSWORD, TestBot, admin_room_on, wait_answering
from .test_replay_and_edits import token

pytestmark = pytest.mark.matrix


def copy_database(source: Path, target: Path) -> None:
    target.mkdir(exist_ok=True)
    for old in target.glob("homeserver.db*"):
        old.unlink()
    for path in source.glob("homeserver.db*"):
        shutil.copy2(path, target / path.name)


async def backed_up_then_passed(server: Synapse, client: ChatClient, room: str, bot_user: str,
                                backup: Path) -> None:
    """A copy of the homeserver's database, then enough commands that the bot's position is past it."""
    server.stop()
    copy_database(server.dir, backup)
    server.start()
    for _ in range(12):
        await client.command(room, "!ping", bot_user, timeout=30)


async def answered_by_a_fresh_login(server: Synapse, alice: str, room: str, bot_user: str, where: Path) -> str:
    """The admin's client is as lost as the bot (its position is ahead too): a new login, as after clearing
    its cache, sends `!ping`; the answer."""
    client = await ChatClient(server.url, alice, PASSWORD, where).start()
    try:
        return (await client.command(room, "!ping", bot_user, timeout=30)).body
    finally:
        await client.stop()


async def test_commands_sent_after_the_homeserver_went_back_in_time_are_answered(tmp_path):
    server = Synapse(tmp_path / "hs", free_port())
    server.configure()
    server.start()
    alice, bot_user, room = admin_room_on(server, "spbot-hs-restored", "Server admin (homeserver restored)")
    (tmp_path / "bot").mkdir()
    bot = TestBot(server, tmp_path / "bot", room, [alice], bot_user)
    bot.start()
    try:
        client = await ChatClient(server.url, alice, PASSWORD, tmp_path / "alice").start()
        await client.wait_joined(room, bot_user, timeout=60)
        await wait_answering(client, bot)
        await backed_up_then_passed(server, client, room, bot_user, tmp_path / "backup")
        await client.stop()
        server.stop()                                   # restored while the bot runs
        copy_database(tmp_path / "backup", server.dir)
        server.start()
        assert (await answered_by_a_fresh_login(server, alice, room, bot_user, tmp_path / "a2")).startswith("pong")
        assert bot.log().count("homeserver_went_back") == 1

        client = await ChatClient(server.url, alice, PASSWORD, tmp_path / "a3").start()
        await client.wait_joined(room, bot_user, timeout=60)
        await backed_up_then_passed(server, client, room, bot_user, tmp_path / "backup-2")
        bot.stop()                                      # restored while the bot is stopped
        server.stop()
        copy_database(tmp_path / "backup-2", server.dir)
        server.start()
        mark, new_key_mark = token(), token()
        await client.send(room, f"!mark {mark}")        # with a room key the bot already holds
        client.client.olm.create_outbound_group_session(room)     # a new room key, as clients rotate them:
        await client.send(room, f"!mark {new_key_mark}")          # it waits on the homeserver for the bot
        await client.stop()
        bot.start()
        for _ in range(300):
            if new_key_mark in bot.marks():
                break
            await asyncio.sleep(0.1)
        assert bot.marks() == [mark, new_key_mark], bot.log()[-3000:]
        assert bot.log().count("homeserver_went_back") == 2

        # A device new to the bot now: the restored homeserver would hand it a one-time key of the bot's that
        # the bot used after the database was saved (and it could not open the message).
        fresh, fresh_mark = await ChatClient(server.url, alice, PASSWORD, tmp_path / "a4").start(), token()
        await fresh.send(room, f"!mark {fresh_mark}")
        await fresh.stop()
        for _ in range(300):
            if fresh_mark in bot.marks():
                break
            await asyncio.sleep(0.1)
        assert bot.marks() == [mark, new_key_mark, fresh_mark], bot.log()[-3000:]
    finally:
        bot.stop()
        server.stop()
