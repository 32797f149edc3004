"""Catalogue services through the real chat path: a bot with Nextcloud (its PostgreSQL database in a real
cluster owned by the test), Vaultwarden (SQLite) and Forgejo in a Docker container enabled in
[services.<name>]. systemctl, journalctl and docker are stateful stand-ins (spbot/devsandbox/
service_world.py) answering in the real formats; the health endpoints are a local HTTP server in this
test process; backups use the real restic. Nothing on this machine is started, stopped or replaced
outside the test's directories and its own PostgreSQL cluster."""
from __future__ import annotations

import re
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from spbot.devsandbox.service_world import ServiceWorld
from tests.fakes.postgres import PostgresCluster, available
from tests.test_approvals import request_for, result_reply
from tests.test_backup_chat import backup_config, new_repository

if TYPE_CHECKING:
    from .conftest import TestBot

pytestmark = [pytest.mark.matrix,
              pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed")]
TIMEOUT = 30
ADMINS = {"@alice:localhost", "@bob:localhost", "@erin:localhost"}
VAULT_LOG = ["2026-11-23T10:00:01+0000 srv vaultwarden[77]: Rocket has launched from http://127.0.0.1:8222",
             "2026-11-23T10:00:02+0000 srv vaultwarden[77]: admin login with ADMIN_TOKEN=Zm9vYmFyYmF6cXV4 ok",
             "2026-11-23T10:00:03+0000 srv vaultwarden[77]: push relay Authorization: Bearer abcdefghijklmnop"]


@dataclass
class Health:
    """The services' local health endpoints; `failing` answers 503 for that path."""
    port: int = 0
    failing: set[str] = field(default_factory=set)

    async def answer(self, request: web.Request) -> web.Response:
        if request.path in self.failing:
            return web.Response(status=503, text="down")
        if request.path == "/status.php":
            return web.json_response({"installed": True, "maintenance": False}, dumps=_compact)
        return web.Response(text="OK")


def _compact(value) -> str:
    import json
    return json.dumps(value, separators=(",", ":"))


@dataclass
class Rig:
    bot: "TestBot"
    world: ServiceWorld
    health: Health
    pg: PostgresCluster
    base: Path

    def argv(self, tool: str) -> list[list[str]]:
        return [c.argv for c in self.world.bins.calls(tool) if c.argv[:1] not in (["show"], ["inspect"], ["stats"],
                                                                                   ["list-units"])]


def nextcloud_rows(pg: PostgresCluster) -> str:
    return pg.sql("SELECT count(*), md5(string_agg(path || ':' || size, ',' ORDER BY fileid)) FROM oc_filecache",
                  database="nextcloud")


@pytest.fixture(scope="module")
async def health():
    state = Health()
    app = web.Application()
    app.router.add_get("/{tail:.*}", state.answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = site._server.sockets[0].getsockname()[1]
    yield state
    await runner.cleanup()


@pytest.fixture(scope="module")
def pg():
    if available():
        pytest.skip(available())
    cluster = PostgresCluster.start()
    cluster.sql("CREATE DATABASE nextcloud")
    cluster.sql("CREATE TABLE oc_filecache (fileid serial PRIMARY KEY, path text, size bigint);"
                "INSERT INTO oc_filecache (path, size) SELECT 'files/alice/photo-' || n || '.jpg', n * 4096 "
                "FROM generate_series(1, 300) n;", database="nextcloud")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
async def rig(make_bot, tmp_path_factory, health, pg) -> Rig:
    base = tmp_path_factory.mktemp("catalogue")
    world = ServiceWorld(base)
    world.install()
    world.unit("phpfpm-nextcloud.service", memory=120 << 20)
    world.unit("nextcloud-cron.timer")
    world.unit("vaultwarden.service", memory=20 << 20, journal=VAULT_LOG)
    world.container("forgejo", health="healthy", memory="64MiB",
                    logs=["2026-11-23T10:00:01.000000000Z 2026/11/23 10:00:01 cmd/web.go:242:runWeb() [I] "
                          "Listen: http://0.0.0.0:3000",
                          "2026-11-23T10:00:02.000000000Z 2026/11/23 10:00:02 ...[E] mirror "
                          "https://bob:hunter2@git.example.org/x.git failed"])
    root = base / "root"
    for unit in ("phpfpm-nextcloud.service", "vaultwarden.service", "gitea.service"):
        (root / "etc/systemd/system").mkdir(parents=True, exist_ok=True)
        (root / "etc/systemd/system" / unit).write_text("[Unit]\n")
    (root / "etc/NIXOS").write_text("")
    (base / "nextcloud/config").mkdir(parents=True)
    (base / "nextcloud/config/config.php").write_text("<?php $CONFIG = ['dbtype' => 'pgsql'];\n")
    (base / "vaultwarden").mkdir()
    with sqlite3.connect(base / "vaultwarden/db.sqlite3") as db:
        db.execute("CREATE TABLE ciphers (uuid TEXT PRIMARY KEY, data TEXT)")
        db.executemany("INSERT INTO ciphers VALUES (?, ?)", [(f"c{n}", f"sealed {n}") for n in range(50)])
    repo, password_file = await new_repository(base)
    url = f"http://127.0.0.1:{health.port}"
    services = f"""
[services]
tool_path = "{world.bins.dir}"
root = "{root}"
check_interval = "1s"
[services.nextcloud]
distro = "nixos"
data_paths = ["{base}/nextcloud"]
database = {{ kind = "postgresql", name = "nextcloud", user = "postgres", host = "{pg.socket_dir}", port = {pg.port} }}
health_url = "{url}/status.php"
[services.vaultwarden]
data_paths = ["{base}/vaultwarden"]
database = {{ kind = "sqlite", path = "{base}/vaultwarden/db.sqlite3" }}
health_url = "{url}/alive"
unhealthy_after = "2s"
[services.forgejo]
containers = ["forgejo"]
data_paths = ["{base}/forgejo"]
health_url = "{url}/api/healthz"
backup = false
[health]
failed_units_interval = "0"
renotify = "1h"
"""
    extra = backup_config(f'kind = "local"\npath = "{repo}"', password_file, world.bins, "")
    bot = await make_bot("catalogue", extra=services + extra, env=world.bins.env())
    return Rig(bot, world, health, pg, base)


def about(bot: "TestBot", needle: str):
    return lambda e: e.sender == bot.user_id and e.type == "m.room.message" and needle in e.body


# --------------------------------------------------------------------------- !services, !service

async def test_services_shows_every_enabled_service_with_health(alice, rig):
    reply = await alice.command(rig.bot.room_id, "!services", rig.bot.user_id, timeout=TIMEOUT)
    lines = reply.body.splitlines()
    rows = {line.split()[0]: (line, lines[i + 1] if i + 1 < len(lines) else "")
            for i, line in enumerate(lines[1:], 1) if not line.startswith(" ")}
    assert list(rows)[:3] == ["nextcloud", "vaultwarden", "forgejo"], reply.body
    line, below = rows["nextcloud"]
    assert re.search(r"^nextcloud — ✅ running since \d{4}-\d\d-\d\d \d\d:\d\d \(.+\) · 120\.0 MiB · "
                     r"HTTP 200 in \d+ ms$", line), line
    assert below.strip() == "last backup: never"
    assert "20.0 MiB" in rows["vaultwarden"][0] and "HTTP 200 in" in rows["vaultwarden"][0]
    assert re.search(r"✅ running .* 64\.0 MiB · HTTP 200 in \d+ ms$", rows["forgejo"][0])
    assert rows["forgejo"][1].strip() == "last backup: not backed up"
    assert "Not healthy" not in reply.body and "<li><b>nextcloud</b>" in reply.content["formatted_body"]


async def test_service_details(alice, rig):
    reply = await alice.command(rig.bot.room_id, "!service nextcloud", rig.bot.user_id, timeout=TIMEOUT)
    body = reply.body
    assert body.startswith("nextcloud: Nextcloud: the family's files, calendars and contacts\nstate: ✅ running since")
    assert "   unit phpfpm-nextcloud.service: ✅ active (running)" in body
    assert "   unit nextcloud-cron.timer: ✅ active (waiting)" in body
    assert "redis-nextcloud" not in body                                   # optional and absent
    assert "database: PostgreSQL database nextcloud" in body and "last backup: never" in body
    docker = await alice.command(rig.bot.room_id, "!service forgejo", rig.bot.user_id, timeout=TIMEOUT)
    assert "   container forgejo: ✅ running, healthy" in docker.body
    unknown = await alice.command(rig.bot.room_id, "!service nextclod", rig.bot.user_id, timeout=TIMEOUT)
    assert unknown.body.startswith("⚠️ <service>: 'nextclod' is not an enabled service; enabled: forgejo, "
                                   "nextcloud, vaultwarden")


async def test_service_logs_are_masked(alice, rig):
    reply = await alice.command(rig.bot.room_id, "!service logs vaultwarden 20 --since 1h", rig.bot.user_id,
                                timeout=TIMEOUT)
    assert reply.body.startswith("Log of vaultwarden (3 line(s); secrets masked):\n")
    assert "ADMIN_TOKEN=***" in reply.body and "Zm9vYmFy" not in reply.body
    assert "Authorization: ***" in reply.body and "abcdefghijklmnop" not in reply.body
    assert "<pre><code>" in reply.content["formatted_body"]
    assert ["--no-pager", "--output=short-iso", "--lines=20", "--since=-3600s", "--unit",
            "vaultwarden.service"] in rig.argv("journalctl")
    docker = await alice.command(rig.bot.room_id, "!service logs forgejo", rig.bot.user_id, timeout=TIMEOUT)
    assert "forgejo: 2026-11-23T10:00:01" in docker.body and "bob:***@git.example.org" in docker.body
    assert "hunter2" not in docker.body and "1 with errors or warnings" in docker.body
    assert ["logs", "--timestamps", "--tail", "50", "forgejo"] in rig.argv("docker")
    bad = await alice.command(rig.bot.room_id, "!service logs vaultwarden --since 1w", rig.bot.user_id,
                              timeout=TIMEOUT)
    assert bad.body.startswith("⚠️ --since '1w': expected a time such as 30m, 1h or 2d")


async def test_restart_and_stop_need_approval(alice, bob, rig):
    rig.world.bins.clear()
    command_id, request, rid = await request_for(alice, rig.bot, "!service restart vaultwarden")
    assert "vaultwarden is ✅ running (vaultwarden.service); its users are cut off for a moment" in request.body
    assert rig.argv("systemctl") == []
    await bob.command(rig.bot.room_id, f"!approve {rid}", rig.bot.user_id, timeout=TIMEOUT)
    done = await result_reply(alice, command_id, rig.bot, "restarted", timeout=TIMEOUT)
    assert done.body.startswith("✅ vaultwarden restarted: ✅ running; health: HTTP 200 in")
    assert rig.argv("systemctl") == [["restart", "--", "vaultwarden.service"]]

    command_id, request, rid = await request_for(alice, rig.bot, "!service stop forgejo")
    assert "forgejo is ✅ running (forgejo); its users are cut off until it is started again" in request.body
    await bob.command(rig.bot.room_id, f"!approve {rid}", rig.bot.user_id, timeout=TIMEOUT)
    stopped = await result_reply(alice, command_id, rig.bot, "stopped", timeout=TIMEOUT)
    assert stopped.body == "✅ forgejo stopped: ❌ down. Start it again with !service start forgejo."
    down = await alice.wait_for(about(rig.bot, "forgejo is down"), TIMEOUT)          # its alert
    assert "🚨 forgejo is down: forgejo not running" in down.body
    started = await alice.command(rig.bot.room_id, "!service start forgejo", rig.bot.user_id, timeout=TIMEOUT)
    if started.body.startswith("⏳"):
        started = await result_reply(alice, started.reply_to, rig.bot, "started", timeout=TIMEOUT)
    assert ["stop", "forgejo"] in rig.argv("docker") and ["start", "forgejo"] in rig.argv("docker")
    await alice.wait_for(about(rig.bot, "✅ resolved: forgejo runs again"), TIMEOUT)


# --------------------------------------------------------------------------- alerts

async def test_unit_failure_and_failing_health_alert_and_recover(alice, rig):
    rig.world.set("units", "vaultwarden.service", state="failed")
    down = await alice.wait_for(about(rig.bot, "vaultwarden is down"), TIMEOUT)
    assert "🚨 vaultwarden is down: vaultwarden.service not running" in down.body
    assert "!service logs vaultwarden" in down.body and set(down.content["m.mentions"]["user_ids"]) == ADMINS
    rig.world.set("units", "vaultwarden.service", state="active")
    await alice.wait_for(about(rig.bot, "✅ resolved: vaultwarden runs again"), TIMEOUT)

    rig.health.failing.add("/alive")
    failing = await alice.wait_for(about(rig.bot, "vaultwarden runs but fails its health check"), TIMEOUT)
    assert "⚠️" in failing.body and "answered HTTP 503 (expected 200)" in failing.body
    rig.health.failing.clear()
    await alice.wait_for(about(rig.bot, "✅ resolved: vaultwarden passes its health check again"), TIMEOUT)


# --------------------------------------------------------------------------- backups

async def test_backup_and_restore_a_service_with_its_database(alice, bob, rig):
    before = nextcloud_rows(rig.pg)
    now = await alice.send(rig.bot.room_id, "!backup now nextcloud")
    done = await alice.wait_for(lambda e: e.sender == rig.bot.user_id and e.reply_to == now
                                and "nextcloud: snapshot" in e.body, 90)
    assert done.body.startswith("✅ nextcloud: snapshot"), done.body
    snapshot = re.search(r"snapshot (\w+)", done.body).group(1)
    dumps = rig.bot.state_dir / "dumps" / "nextcloud"
    assert not dumps.exists()

    rig.pg.sql("DELETE FROM oc_filecache WHERE fileid > 100; UPDATE oc_filecache SET size = 0", database="nextcloud")
    assert nextcloud_rows(rig.pg) != before
    listed = await alice.command(rig.bot.room_id, "!services", rig.bot.user_id, timeout=TIMEOUT)
    assert re.search(r"^nextcloud — .*\n +last backup: .* ago$", listed.body, re.M), listed.body

    rig.world.bins.clear()
    command_id, request, rid = await request_for(alice, rig.bot, "!backup restore latest nextcloud")
    assert f"Snapshot {snapshot} of nextcloud" in request.body
    assert "stops and restarts phpfpm-nextcloud.service" in request.body
    await bob.command(rig.bot.room_id, f"!approve {rid}", rig.bot.user_id, timeout=TIMEOUT)
    restored = await result_reply(alice, command_id, rig.bot, "restored nextcloud", timeout=120)
    assert nextcloud_rows(rig.pg) == before                             # the database's content is back
    assert "the PostgreSQL database nextcloud was imported from the snapshot's dump" in restored.body
    assert "stopped and started again: phpfpm-nextcloud.service" in restored.body
    assert re.search(r"afterwards: ✅ nextcloud: HTTP 200 in \d+ ms", restored.body), restored.body
    assert [["stop", "--", "phpfpm-nextcloud.service"], ["start", "--", "phpfpm-nextcloud.service"]] == \
        rig.argv("systemctl")
    assert not dumps.exists()


async def test_detect_proposes_what_is_not_enabled(alice, rig):
    reply = await alice.command(rig.bot.room_id, "!services detect", rig.bot.user_id, timeout=TIMEOUT)
    assert reply.body.startswith("Found 3 service(s): gitea, nextcloud, vaultwarden. To watch and back up gitea, "
                                 "add to the config and restart the bot:")
    assert "\n[services.gitea]\n" in reply.body
    assert "# already enabled: [services.nextcloud]" in reply.body
