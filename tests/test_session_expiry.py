"""A homeserver that lets access tokens expire (Synapse's `session_lifetime`; token lifetimes for clients
without refresh tokens): the expired token gets M_UNKNOWN_TOKEN with `soft_logout: true`, and the device
is kept. Before, the bot took that for being signed out: it stopped, and its next start logged in as a
new device, told the admins so and deleted the old one, once per lifetime. Now it logs in again as the
same device (spbot/session_renewal.py) and goes on, while running and at a start after the expiry.

A Synapse of its own, started for this module: every token on it lives LIFETIME seconds, so each admin
client is a fresh login made after the bot's token expired."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
import yaml

from spbot.chatclient import ChatClient
from spbot.devstack import Synapse, free_port

from .conftest import BOT_PASSWORD, PASSWORD, TestBot, admin_room_on

pytestmark = pytest.mark.matrix

LIFETIME = 15


@pytest.fixture(scope="module")
def expiring_synapse(tmp_path_factory):
    server = Synapse(tmp_path_factory.mktemp("expiring-hs"), free_port())
    server.configure()
    config = yaml.safe_load(server.config_path.read_text())
    config["session_lifetime"] = f"{LIFETIME}s"
    server.config_path.write_text(yaml.safe_dump(config))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def credentials(bot: TestBot) -> dict:
    return json.loads((bot.state_dir / "credentials.json").read_text())


async def until_token_expired(bot: TestBot) -> None:
    """The bot's token was written when it was issued; it has expired a second after its lifetime."""
    issued = (bot.state_dir / "credentials.json").stat().st_mtime
    await asyncio.sleep(max(0.0, issued + LIFETIME + 1 - time.time()))


async def fresh_admin_ping(server: Synapse, alice: str, bot: TestBot, where) -> str:
    """A new login of alice's (the last one expired too) sends !ping; the bot's answer."""
    client = await ChatClient(server.url, alice, PASSWORD, where).start()
    try:
        await client.wait_joined(bot.room_id, bot.user_id, timeout=60)
        reply = await client.command(bot.room_id, "!ping", bot.user_id, timeout=60)
        return reply.body
    finally:
        await client.stop()


async def cross_signing_checked(bot: TestBot, timeout: float = 30) -> str:
    """The line of the bot's last start that says how its device stands with its cross-signing identity."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        since_start = bot.log().rsplit("spbot.bot started", 1)[-1]
        checked = [line for line in since_start.splitlines() if "own_device cross_signing" in line]
        if checked:
            return checked[-1]
        await asyncio.sleep(0.2)
    raise AssertionError("the bot did not check its device's cross-signing:\n" + bot.log()[-2000:])


async def test_an_expired_session_is_renewed_as_the_same_device(expiring_synapse, tmp_path):
    server = expiring_synapse
    alice, bot_user, room = admin_room_on(server, "spbot-expiring", "Server admin (expiring sessions)")
    (tmp_path / "bot").mkdir()
    bot = TestBot(server, tmp_path / "bot", room, [alice], bot_user)
    bot.start()
    try:
        first = await fresh_admin_ping(server, alice, bot, tmp_path / "alice-1")
        assert first.startswith("pong"), first
        before = credentials(bot)

        await until_token_expired(bot)                 # running: its sync and its reply meet the expiry
        reply = await fresh_admin_ping(server, alice, bot, tmp_path / "alice-2")
        assert reply.startswith("pong"), reply
        running = credentials(bot)
        assert running["device_id"] == before["device_id"] and running["access_token"] != before["access_token"]
        assert bot.log().count("spbot.bot started") == 1 and "session_renewed" in bot.log(), bot.log()[-3000:]

        bot.stop()                                     # stopped: the start after the expiry meets it
        await until_token_expired(bot)
        doctor = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "spbot", "doctor", "--config",
                                                          str(bot.config_path)], capture_output=True, text=True)
        assert "the stored access token has expired" in doctor.stdout, doctor.stdout
        assert "signed out" not in doctor.stdout, doctor.stdout
        bot.start()
        reply = await fresh_admin_ping(server, alice, bot, tmp_path / "alice-3")
        assert reply.startswith("pong"), reply
        after = credentials(bot)
        assert after["device_id"] == before["device_id"] and after["access_token"] != running["access_token"]
        log = bot.log()
        assert log.count("spbot.bot started") == 2 and log.count("session_renewed") >= 2, log[-3000:]
        assert "signed_out" not in log and "login_password" not in log.split("spbot.bot started")[1]
        assert "state=ok device_signed=True" in await cross_signing_checked(bot), "not the signed device"
        assert BOT_PASSWORD not in log
        assert all(credential["access_token"] not in log for credential in (before, running, after))
    finally:
        bot.stop()
