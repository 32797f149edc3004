"""deploy/synapse-dev: `up` brings the whole dev stack, writes dev.json, and answers; `down` stops it;
`up` again brings back the same accounts, room, bot device and keys. Runs in its own state directory
and port, so it never touches a developer's running dev stack."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from spbot import devup
from spbot.devstack import free_port

from .conftest import ROOT

pytestmark = pytest.mark.matrix


def test_up_down_up_keeps_everything(tmp_path):
    state = tmp_path / "state"
    port = free_port()
    try:
        dev = devup.up(state, port=port)
        assert set(dev) >= {"homeserver", "server_name", "bot_user_id", "room_id", "users"}
        assert dev["homeserver"] == f"http://127.0.0.1:{port}"
        users = {u["user_id"]: u for u in dev["users"]}
        assert {u: users[u]["admin"] for u in users} == {
            "@alice:localhost": True, "@bob:localhost": True, "@carol:localhost": False}
        assert all(u["password"] for u in dev["users"])
        device = json.loads((state / "bot" / "credentials.json").read_text())["device_id"]
        console = subprocess.run([sys.executable, "-m", "spbot", "console", "--dev-json",
                                  str(state / "dev.json")], input="!status\n", capture_output=True,
                                 text=True, cwd=ROOT, timeout=120)
        assert f"device {device}" in console.stdout, console.stdout + console.stderr
        devup.down(state)
        assert devup.BotProcess(state / "bot.toml", state / "bot.log").running_pid() is None
        again = devup.up(state, port=port)
        assert again["room_id"] == dev["room_id"] and again["users"] == dev["users"]
        assert json.loads((state / "bot" / "credentials.json").read_text())["device_id"] == device
    finally:
        devup.down(state)
