"""deploy/synapse-dev: `up` brings the whole dev stack, writes dev.json, and answers; `down` stops it;
`up` again brings back the same accounts, room, bot device and keys. The newcomer's walk through the
console works (backup, restore approved by Bob, a sandboxed upgrade and ssh add, services) and changes
nothing on this machine. Every stack runs in its own state directory and port, so it never touches a
developer's running dev stack."""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from spbot import devup
from spbot.chatclient import ChatClient
from spbot.devsandbox.notice import NOTICE
from spbot.devsandbox.standins import SANDBOX_LINE, Sandbox
from spbot.devsandbox.tomlout import dumps
from spbot.devsandbox.volumes import VolumeBox
from spbot.devstack import free_port

from .conftest import ROOT

pytestmark = pytest.mark.matrix


def console(state: Path, text: str, user: str | None = None, timeout: float = 240) -> str:
    argv = [sys.executable, "-m", "spbot", "console", "--dev-json", str(state / "dev.json"),
            "--timeout", "180"] + (["--user", user] if user else [])
    done = subprocess.run(argv, input=text, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


class BackgroundConsole:
    """`printf 'line\\n' | spbot console` left running, its output read as it comes (Alice waiting
    for Bob's approval)."""

    def __init__(self, state: Path, text: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "spbot", "console", "--dev-json", str(state / "dev.json"),
             "--timeout", "180"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
        self.process.stdin.write(text)
        self.process.stdin.close()
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
        self.reader.start()

    def read_until(self, pattern: str, timeout: float = 120) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if match := re.search(pattern, "".join(self.lines)):
                return match
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} in:\n{''.join(self.lines)}")

    def finish(self, timeout: float = 240) -> str:
        self.process.wait(timeout)
        self.reader.join(10)
        return "".join(self.lines)


def approved_by_bob(state: Path, text: str) -> str:
    """Alice sends `text` from her console; Bob approves the request from his; Alice's whole output."""
    alice = BackgroundConsole(state, text)
    request = alice.read_until(r"!approve (\d+)")[1]
    assert "approved" in console(state, f"!approve {request}\n", user="@bob:localhost")
    return alice.finish()


class Listener:
    """Alice's own client, synced in a thread from now on, until a message of the bot fits `wanted`
    (one that comes after the bot restarted, which a console would not wait for)."""

    def __init__(self, dev: dict, store: Path, wanted, timeout: float = 150):
        alice, self.found = dev["users"][0], None
        self.client = ChatClient(dev["homeserver"], alice["user_id"], alice["password"], store)
        self.ready = threading.Event()

        async def listen():
            await self.client.start()
            self.ready.set()
            try:
                self.found = await self.client.wait_for(
                    lambda e: e.sender == dev["bot_user_id"] and wanted(e), timeout=timeout)
            finally:
                await self.client.stop()
        self.thread = threading.Thread(target=asyncio.run, args=(listen(),), daemon=True)
        self.thread.start()
        assert self.ready.wait(60), "Alice's listening client did not start"

    def result(self):
        self.thread.join(200)
        assert self.found is not None, [e.body for e in self.client.events][-10:]
        return self.found


def fingerprint(path: Path) -> str:
    """What a file is now (content hash, or why it cannot be read), to prove it did not change."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return "absent"
    except PermissionError:
        return f"unreadable, mtime {path.stat().st_mtime_ns}"


def host_state() -> dict[str, str]:
    return {"dpkg": fingerprint(Path("/var/lib/dpkg/status")),
            "root keys": fingerprint(Path("/root/.ssh/authorized_keys")),
            "boot id": Path("/proc/sys/kernel/random/boot_id").read_text()}


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
        assert f"device {device}" in console(state, "!status\n")
        devup.down(state)
        assert devup.BotProcess(state / "bot.toml", state / "bot.log").running_pid() is None
        again = devup.up(state, port=port)
        assert again["room_id"] == dev["room_id"] and again["users"] == dev["users"]
        assert json.loads((state / "bot" / "credentials.json").read_text())["device_id"] == device
    finally:
        devup.down(state)


@pytest.mark.timeout(900)
def test_newcomer_walk_is_real_and_changes_nothing_on_the_host(tmp_path, monkeypatch):
    """The README's first screen: up, then as Alice !backup now, a restore approved by Bob, an
    approved !upgrade (a simulated live log), an approved !ssh add (into the sandbox's file only),
    !services listing the stack's own services; a config override survives up and restart."""
    monkeypatch.setenv("SPBOT_SANDBOX_LINE_DELAY", "0.02")
    state, local = tmp_path / "state", tmp_path / "bot.local.toml"
    local.write_text(dumps({"backup": {"drill_files": 7}}))
    before = host_state()
    try:
        dev = devup.up(state, port=free_port(), local_config=local)
        box = Sandbox(state)
        assert dev["sandbox"] is True and 'drill_files = 7' in (state / "bot.toml").read_text()

        out = console(state, "!backup now\n")
        assert "⏳ !backup now — job #" in out and "done after" in out, out
        snapshots = dict(re.findall(r"✅ ([\w-]+): snapshot ([0-9a-f]{8})", out))
        assert set(snapshots) == {"synapse", "family-files"}, out

        restored = tmp_path / "restored"          # the path: every service's latest, side by side
        out = approved_by_bob(state, f"!backup restore latest --to {restored}\n")
        assert "finished" in out, out
        assert sorted(p.name for p in restored.iterdir()) == ["family-files", "synapse"], out
        cakes = list((restored / "family-files").rglob("grandmas-cake.md"))
        assert cakes and cakes[0].read_text() == devup.FAMILY_FILES["documents/recipes/grandmas-cake.md"]
        db_dumps = list((restored / "synapse").rglob("homeserver.db"))
        assert db_dumps and db_dumps[0].read_bytes().startswith(b"SQLite format 3"), out

        box.bins.clear()
        out = approved_by_bob(state, "!upgrade\n")
        assert "Unpacking " in out and SANDBOX_LINE in out and "Upgrade of" in out, out
        assert "Dev sandbox" in out.split("Upgrade of", 1)[1], out
        upgrades = [c.argv for c in box.bins.calls("apt-get") if "dist-upgrade" in c.argv and "-s" not in c.argv]
        assert len(upgrades) == 1, box.bins.calls()

        key = _public_key(tmp_path)
        out = approved_by_bob(state, f"!ssh add {key}\n")
        assert "Added ED25519" in out and str(box.authorized_keys) in out, out
        assert box.authorized_keys.read_text().strip() == key

        starts = (state / "bot.log").read_text().count("spbot.bot started")
        boot = box.boot_id.read_text()
        back = Listener(dev, tmp_path / "listener", lambda e: "Back after a reboot" in e.body)
        out = approved_by_bob(state, "!reboot\n")
        assert "Rebooting" in out and NOTICE in out, out
        deadline = time.monotonic() + 90
        while (state / "bot.log").read_text().count("spbot.bot started") == starts:
            assert time.monotonic() < deadline, (state / "bot.log").read_text()[-3000:]
            time.sleep(0.5)
        assert box.boot_id.read_text() != boot and [c.argv for c in box.bins.calls("systemctl")
                                                    if c.argv[0] == "reboot"] == [["reboot"]]
        assert NOTICE in back.result().body            # the report after the reboot says it was simulated

        out = console(state, "!services\n")
        for unit in ("matrix-synapse.service", "spbot.service", "nginx.service"):
            assert f"{unit} · ✅ active" in out, out

        assert host_state() == before
        devup.restart(state)
        assert 'drill_files = 7' in (state / "bot.toml").read_text()
        assert local.read_text() == dumps({"backup": {"drill_files": 7}})
    finally:
        devup.down(state)


async def test_failed_unit_reaches_the_admins_and_the_cloud_is_simulated(tmp_path):
    """`spbot dev fail-unit` marks a sandbox unit failed: the bot's own check alerts the admins in
    the room, and !services shows it failed. With --simulate-cloud, !server and !dns check answer
    from the project's local Hetzner and Cloudflare fakes, and say so; !volume grow, approved by Bob,
    grows the fake's volume and then the sandboxed filesystem on it (the resize2fs stand-in)."""
    state = tmp_path / "state"
    try:
        # In a process of its own (as a developer runs it): nio binds its crypto store's tables to one
        # database for the whole process, so up's client in a thread here raced the session's clients.
        done = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "spbot", "dev", "up", "--simulate-cloud", "--state", str(state),
            "--port", str(free_port())], capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        dev = json.loads((state / "dev.json").read_text())
        alice = dev["users"][0]
        client = ChatClient(dev["homeserver"], alice["user_id"], alice["password"], tmp_path / "alice")
        await client.start()
        try:
            done = await asyncio.to_thread(subprocess.run, [
                sys.executable, "-m", "spbot", "dev", "fail-unit", "nginx", "--state", str(state)],
                capture_output=True, text=True, cwd=ROOT, timeout=60)
            assert done.returncode == 0 and "nginx.service is now failed" in done.stdout, done.stderr
            alert = await client.wait_for(lambda e: e.sender == dev["bot_user_id"]
                                          and "nginx.service has failed" in e.body, timeout=90)
            assert alice["user_id"] in alert.content.get("m.mentions", {}).get("user_ids", [])
        finally:
            await client.stop()
        out = await asyncio.to_thread(console, state, "!services\n!server\n!dns check\n")
        assert "nginx.service · ❌ failed" in out, out
        assert "family-server: running" in out and "git A — ❌ missing" in out, out
        assert out.count(NOTICE) == 3, out

        box = Sandbox(state)                 # the fake's volume 100 ("data", 50 GB) is at /mnt/data
        box.bins.clear()
        out = await asyncio.to_thread(approved_by_bob, state, "!volume grow /mnt/data +10\n")
        assert "grew 50 → 60 GB" in out and "49.0 GiB → 58.8 GiB" in out and NOTICE in out, out
        device = str(VolumeBox(state).device)
        assert [c.argv for c in box.bins.calls("resize2fs")] == [["--", device]], box.bins.calls()
        assert VolumeBox(state).mounts()["/mnt/data"]["blocks"] == 60 * 2**30 // 4096
        out = await asyncio.to_thread(console, state, "!volume list\n")
        assert re.search(r"data \(#100\).*60 GB", out) and "mounted at /mnt/data: ext4" in out, out
    finally:
        await asyncio.to_thread(devup.down, state)


def test_port_taken_by_someone_else_is_not_mistaken_for_ours(tmp_path):
    """Another checkout's stack on the port kept in state: up picks a free port and says so; the
    port of a Synapse that is not ours is never reused."""
    messages: list[str] = []
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        port = devup.choose_port(tmp_path, taken, messages.append)
    assert port != taken and messages and str(taken) in messages[0] and str(port) in messages[0]
    assert devup.choose_port(tmp_path, port, messages.append) == port      # free: kept


def _public_key(tmp_path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "newcomer@laptop", "-f",
                    str(tmp_path / "id")], check=True)
    return (tmp_path / "id.pub").read_text().strip()
