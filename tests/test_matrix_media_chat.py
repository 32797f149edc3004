"""The family homeserver's own upkeep through the real chat path, against real Synapses: the bot's own
homeserver and a second one federating with it on loopback (tests/media_homeservers.py). Media uploaded on
the peer and downloaded through the bot's homeserver lands in its remote media cache for real; `!matrix
media` measures it, the disk alert on the mount holding the media store offers the purge, the purge
(approved) empties the cache on disk and in the admin API while local uploads stay; `!service restart
synapse` really restarts the bot's homeserver (the systemctl stand-in stops and starts it) and the bot
says when it is back. These homeservers are this module's own: the session's Synapse is left alone."""
from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from spbot.chatclient import ChatClient
from spbot.devsandbox.fakebin import Rule
from spbot.devsandbox.service_world import ServiceWorld
from spbot.devstack import PlainSession
from tests import conftest
from tests.conftest import BOT_PASSWORD, PASSWORD, wait_answering
from tests.media_homeservers import (ROOT, UNIT, FederatingSynapse, certificate, detached, download, files_under,
                                     login, upload)
from tests.test_approvals import request_for, result_reply

pytestmark = pytest.mark.matrix
TIMEOUT = 30
LOCAL_PHOTO = b"\x89PNG local family photo " + bytes(range(256)) * 200        # ~51 KB
REMOTE_PHOTO = b"\x89PNG a friend's photo on another server " + bytes(range(256)) * 600   # ~154 KB
GiB = 1 << 30


class Home:
    """The module's two homeservers, the family's media on them and the bot on the first."""

    def __init__(self, base: Path):
        self.base = base
        tls = certificate(base)
        self.server, self.peer = FederatingSynapse(base / "home", tls), FederatingSynapse(base / "peer", tls)
        self.usage = base / "usage.json"
        self.world = ServiceWorld(base / "machine")
        self.remote_mxc = self.local_mxc = ""
        self.admin_token = ""
        self.bot: conftest.TestBot | None = None

    def user(self, name: str) -> str:
        return f"@{name}:{self.server.server_name}"

    def disk(self, percent: float) -> None:
        total = 100 * GiB
        used = int(total * percent / 100)
        self.usage.write_text(json.dumps({"mounts": [{"mountpoint": str(self.server.dir), "device": "/dev/vdb",
                                                      "fstype": "ext4", "total": total, "used": used,
                                                      "free": total - used}]}))

    def cached_files(self) -> int:
        return files_under(self.server.media_store / "remote_content")

    def media_info(self, mxc: str) -> httpx.Response:
        origin, media_id = mxc.removeprefix("mxc://").split("/", 1)
        return httpx.get(f"{self.server.url}/_synapse/admin/v1/media/{origin}/{media_id}", timeout=30,
                         headers={"Authorization": f"Bearer {self.admin_token}"})


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    state = Home(tmp_path_factory.mktemp("media"))
    for server in (state.server, state.peer):
        server.configure()
    detached(state.server, "start")          # nobody's child: the systemctl stand-in restarts it
    try:
        state.peer.start()
        _fill(state)
        yield state
    finally:
        if state.bot is not None:
            state.bot.stop()
        state.server.process = None
        state.server.stop()
        state.peer.stop()


def _fill(state: Home) -> None:
    """alice uploads a photo here; pat's photo on the peer is opened here, so this server caches it."""
    server, peer = state.server, state.peer
    for name in ("alice", "bob"):
        server.register(name, PASSWORD)
    server.register("spbot", BOT_PASSWORD, admin=True)
    peer.register("pat", PASSWORD)
    state.admin_token = login(server, state.user("spbot"), BOT_PASSWORD)
    alice_token = login(server, state.user("alice"), PASSWORD)
    state.local_mxc = upload(server, alice_token, LOCAL_PHOTO, "family.png")
    state.remote_mxc = upload(peer, login(peer, f"@pat:{peer.server_name}", PASSWORD), REMOTE_PHOTO, "friend.png")
    assert download(server, alice_token, state.remote_mxc) == REMOTE_PHOTO
    assert state.cached_files() == 1


@pytest.fixture(scope="module")
async def people(home):
    clients = {}
    for name in ("alice", "bob"):
        client = ChatClient(home.server.url, home.user(name), PASSWORD, home.base / f"client-{name}")
        await client.start()
        clients[name] = client
    yield clients
    for client in clients.values():
        await client.stop()


@pytest.fixture(scope="module")
async def bot(home, people) -> conftest.TestBot:
    server = home.server
    owner = PlainSession.login(server.url, home.user("alice"), PASSWORD)
    room = owner.create_encrypted_room("Family server (media)", [home.user("bob"), home.user("spbot")])
    owner.logout()
    member = PlainSession.login(server.url, home.user("bob"), PASSWORD)
    member.join(room)
    member.logout()
    home.world.install()
    home.world.unit(UNIT, memory=300 << 20)
    home.world.bins.add("systemctl", [Rule(handler="tests.media_homeservers:restarting_systemctl")])
    (home.base / "machine" / "homeserver.txt").write_text(f"{server.dir} {server.port} {server.server_name}")
    home.disk(50)
    extra = f"""
[services]
tool_path = "{home.world.bins.dir}"
check_interval = "0"
[services.synapse]
data_paths = ["{server.dir}"]
media_store = "{server.media_store}"
database = {{ kind = "sqlite", path = "{server.dir}/homeserver.db" }}
health_url = "{server.url}/health"
backup = false
[health]
failed_units_interval = "0"
[disk]
usage_source = "{home.usage}"
sample_interval = "1s"
renotify = "1h"
"""
    (home.base / "bot").mkdir()
    test_bot = conftest.TestBot(server, home.base / "bot", room, [home.user("alice"), home.user("bob")], home.user("spbot"),
                       extra=extra)
    test_bot.process.env = home.world.bins.env(PYTHONPATH=str(ROOT))
    home.bot = test_bot
    test_bot.start()
    await people["alice"].wait_joined(room, test_bot.user_id, timeout=60)
    await wait_answering(people["alice"], test_bot)
    return test_bot


def about(bot: conftest.TestBot, needle: str):
    return lambda e: e.sender == bot.user_id and e.type == "m.room.message" and needle in e.body


def kib(text: str, label: str) -> float:
    match = re.search(rf"{label}: ([\d.]+) (B|KiB|MiB)", text)
    assert match, text
    return float(match.group(1)) / (1024 if match.group(2) == "B" else 1) * (1024 if match.group(2) == "MiB" else 1)


# --------------------------------------------------------------------------- measuring

async def test_matrix_media_shows_uploads_cache_and_uploaders(home, people, bot):
    reply = await people["alice"].command(bot.room_id, "!matrix media", bot.user_id, timeout=TIMEOUT)
    body = reply.body
    assert body.startswith(f"Media of synapse ({home.server.media_store}):"), body
    assert 140 <= kib(body, "media cached from other servers") <= 200, body      # the ~154 KB photo of pat
    assert 45 <= kib(body, "media uploaded here") <= 70, body                   # alice's ~51 KB photo
    assert re.search(r"database size: [\d.]+ (KiB|MiB) \(SQLite\)", body), body
    assert re.search(r"biggest uploaders: @alice [\d.]+ KiB \(1\)", body), body
    assert "free space: !matrix purge-remote-media --older-than 30d" in body


async def test_service_synapse_shows_the_media_store(people, bot):
    reply = await people["alice"].command(bot.room_id, "!service synapse", bot.user_id, timeout=TIMEOUT)
    assert "unit matrix-synapse.service: ✅ active (running)" in reply.body, reply.body
    assert "media cached from other servers: " in reply.body and "media uploaded here: " in reply.body
    assert "database size: " in reply.body and "!matrix media" in reply.body


async def test_status_counts_the_services(people, bot):
    reply = await people["alice"].command(bot.room_id, "!status", bot.user_id, timeout=TIMEOUT)
    assert "services: 1 running, none failing" in reply.body, reply.body


# --------------------------------------------------------------------------- the disk alert's offer

async def test_full_disk_alert_offers_the_purge(home, people, bot):
    alice, bob = people["alice"], people["bob"]
    home.disk(97)
    alert = await alice.wait_for(about(bot, "is almost full"), TIMEOUT)
    assert "The homeserver's cache of other servers' media takes 1" in alert.body, alert.body
    assert "react ✅ to this message to run !matrix purge-remote-media --older-than 30d" in alert.body
    await alice.react(bot.room_id, alert.event_id, "✅")
    request = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == alert.event_id
                                   and e.body.startswith("🔐 Request #"), TIMEOUT)
    assert "nobody opened for 30 day(s)" in request.body and "uploads from this server stay" in request.body
    rid = int(re.match(r"🔐 Request #(\d+)", request.body).group(1))
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id, timeout=TIMEOUT)
    done = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == alert.event_id
                                and "Purged" in e.body, 60)
    # pat's photo was opened minutes ago: a 30-day purge keeps it
    assert done.body.startswith("✅ Purged 0 cached media item(s) not opened for 30 day(s): freed 0 B."), done.body
    assert home.cached_files() == 1
    home.disk(50)
    await alice.wait_for(about(bot, "✅ resolved:"), TIMEOUT)


# --------------------------------------------------------------------------- the purge

async def test_purge_empties_the_cache_and_keeps_uploads(home, people, bot):
    alice, bob = people["alice"], people["bob"]
    assert home.media_info(home.remote_mxc).status_code == 200
    command_id, request, rid = await request_for(alice, bot, "!matrix purge-remote-media --older-than 0d")
    assert "@bob" in request.body and "the cache holds 1" in request.body, request.body
    assert home.cached_files() == 1                                          # nothing before the approval
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id, timeout=TIMEOUT)
    done = await result_reply(alice, command_id, bot, "Purged", timeout=60)
    freed = re.match(r"✅ Purged 1 cached media item\(s\) not opened for 0 day\(s\): freed ([\d.]+) KiB\.", done.body)
    assert freed and 140 <= float(freed.group(1)) <= 200, done.body
    assert kib(done.body, "media cached from other servers") <= 32, done.body      # its empty folders stay
    assert home.cached_files() == 0                                          # gone on disk ...
    assert home.media_info(home.remote_mxc).status_code == 404               # ... and for Synapse
    assert home.media_info(home.local_mxc).status_code == 200                # alice's upload stays
    assert files_under(home.server.media_store / "local_content") == 1


async def test_purge_refuses_a_bad_age(people, bot):
    reply = await people["alice"].command(bot.room_id, "!matrix purge-remote-media --older-than 3w", bot.user_id,
                                          timeout=TIMEOUT)
    assert "expected days such as 30d" in reply.body, reply.body


# --------------------------------------------------------------------------- restarting the homeserver

async def test_restarting_the_homeserver_is_followed_up(home, people, bot):
    alice, bob = people["alice"], people["bob"]
    old_pid = home.server.running_pid()
    command_id, request, rid = await request_for(alice, bot, "!service restart synapse")
    assert "The chat itself goes quiet while the homeserver restarts." in request.body
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id, timeout=TIMEOUT)
    await result_reply(alice, command_id, bot, "the homeserver this chat runs on", timeout=TIMEOUT)
    done = await result_reply(alice, command_id, bot, "restarted", timeout=120)
    back = re.search(r"The homeserver is back after (\d+) s\.", done.body)
    assert done.body.startswith("✅ synapse restarted: ✅ running; health: HTTP 200") and back, done.body
    assert 1 <= int(back.group(1)) <= 90
    assert home.server.running_pid() not in (None, old_pid)                 # really restarted
    assert ["restart", "--", UNIT] in [c.argv for c in home.world.bins.calls("systemctl")]
    await alice.command(bot.room_id, "!ping", bot.user_id, timeout=TIMEOUT)
