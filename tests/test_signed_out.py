"""The bot's session signed out on the homeserver (an admin ends it from a client's list of sessions, a
password reset signs out every device): before, the bot retried its sync forever, deaf and silent, with
"homeserver unreachable" in its log. Now it stops with a failure (exit status 1, so that systemd's
Restart=on-failure starts it again), and its next start logs in with the password as a new device,
cross-signs it, and tells the admins what happened, ringing them."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import httpx
import pytest

from .conftest import wait_answering

pytestmark = pytest.mark.matrix


async def test_a_signed_out_bot_stops_then_logs_in_anew_and_says_so(make_bot, alice, synapse):
    bot = await make_bot("signed-out")
    old = json.loads((bot.state_dir / "credentials.json").read_text())
    async with httpx.AsyncClient() as http:           # what "sign out this session" does
        answer = await http.post(f"{synapse.url}/_matrix/client/v3/logout",
                                 headers={"Authorization": f"Bearer {old['access_token']}"})
    assert answer.status_code == 200, answer.text
    process = bot.process.process
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert process.poll() == 1, "the bot did not stop with a failure: " + bot.log()[-2000:]
    doctor = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "spbot", "doctor", "--config",
                                                      str(bot.config_path)], capture_output=True, text=True)
    assert "the stored access token was rejected (the bot's session was signed out)" in doctor.stdout

    started = time.monotonic()
    bot.start()                                         # as systemd's Restart=on-failure does
    told = await alice.wait_for(lambda e: e.sender == bot.user_id and e.received > started
                                and "was signed out on the homeserver" in e.body, timeout=90)
    new = json.loads((bot.state_dir / "credentials.json").read_text())["device_id"]
    assert new != old["device_id"]
    assert f"my session (device {old['device_id']}) was signed out" in told.body
    assert f"new device {new} and signed it with my cross-signing identity" in told.body, told.body
    assert alice.user_id in told.content["m.mentions"]["user_ids"]
    await wait_answering(alice, bot)
