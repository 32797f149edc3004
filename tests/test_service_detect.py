"""Detection and the machine side of catalogue services, in-process: a fake root directory tree with unit
files, data paths and a NixOS configuration; systemctl, journalctl and docker as stateful stand-ins
(spbot/devsandbox/service_world.py) answering in the real tools' formats; a local HTTP health endpoint."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from aiohttp import web

from spbot.devsandbox.service_world import ServiceWorld
from spbot.features.services.definition import HealthCheck
from spbot.features.services.detect import detect, option_on, proposal
from spbot.features.services.enabled import ServiceConfig, resolve
from spbot.features.services.health import check_http
from spbot.features.services.journal import journal, mask, since_seconds, summarise
from spbot.features.services.settings import ServicesSettings
from spbot.features.services.state import Controller


def touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def debian(tmp_path) -> Path:
    root = tmp_path / "debian"
    units = root / "lib/systemd/system"
    for unit in ("vaultwarden.service", "postfix.service", "dovecot.service", "opendkim.service", "ssh.service",
                 "php8.2-fpm.service", "certbot.timer", "certbot.service"):
        touch(units / unit, "[Unit]\n")
    touch(root / "etc/systemd/system/multi-user.target.wants/gitea.service")    # a link dir, not a unit dir
    touch(root / "var/lib/vaultwarden/db.sqlite3")
    touch(root / "var/mail/alice")
    touch(root / "etc/postfix/main.cf")
    touch(root / "var/www/nextcloud/status.php")
    return root


def test_detect_on_debian(debian):
    found = {f.name: f for f in detect(debian)}
    assert sorted(found) == ["certbot", "mail", "nextcloud", "vaultwarden"]       # gitea's wants link is no unit
    mail = found["mail"]
    assert mail.units == ["postfix.service", "dovecot.service", "opendkim.service"]
    assert [str(p) for p in mail.paths] == ["/var/mail", "/etc/postfix"]
    assert found["vaultwarden"].paths == [Path("/var/lib/vaultwarden")] and not found["vaultwarden"].missing_paths
    assert found["nextcloud"].paths == [Path("/var/www/nextcloud")]              # the Debian variant


def test_detect_on_nixos_reads_units_and_options(tmp_path):
    root = tmp_path / "nixos"
    touch(root / "etc/NIXOS")
    touch(root / "etc/systemd/system/phpfpm-nextcloud.service")
    touch(root / "etc/systemd/system/dovecot2.service")
    touch(root / "etc/systemd/system/postfix.service")
    touch(root / "var/lib/nextcloud/config/config.php")
    touch(root / "etc/nixos/configuration.nix", "{ ... }: {\n  services.gitea = {\n    enable = true;\n"
                                                "    settings.server.DOMAIN = \"git.example.org\";\n  };\n"
                                                "  services.vaultwarden.enable = true;\n"
                                                "  services.pleroma.enable = false;\n}\n")
    found = {f.name: f for f in detect(root)}
    assert sorted(found) == ["gitea", "mail", "nextcloud", "vaultwarden"]
    assert found["gitea"].nixos_option and not found["gitea"].units
    assert found["mail"].units == ["postfix.service", "dovecot2.service"]        # NixOS names
    assert found["vaultwarden"].missing_paths == [Path("/var/lib/bitwarden_rs")]


def test_option_lookup():
    assert option_on("services.gitea.enable = true;", "services.gitea.enable")
    assert option_on("services.gitea = {\n enable = true;\n};", "services.gitea.enable")
    assert not option_on("services.gitea.enable = false;", "services.gitea.enable")
    assert not option_on("services.giteaX.enable = true;", "services.gitea.enable")


def test_the_proposal_is_config_the_bot_accepts(debian):
    found = detect(debian)
    text = proposal(found, enabled={"certbot"})
    assert "# already enabled: [services.certbot]" in text
    assert "[services.vaultwarden]\n" in text
    assert 'data_paths = ["/var/mail", "/etc/postfix"]   # not here: /var/lib/rspamd' in text
    section = tomllib.loads(text)["services"]
    assert sorted(section) == ["mail", "nextcloud", "vaultwarden"]
    settings = ServicesSettings.model_validate(section)
    assert sorted(settings.enabled) == ["mail", "nextcloud", "vaultwarden"]


def test_the_command_line(debian):
    out = subprocess.run([sys.executable, "-m", "spbot", "services", "detect", "--root", str(debian)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"# found under {debian}: certbot, mail, nextcloud, vaultwarden")
    assert "[services.vaultwarden]" in out.stdout
    empty = subprocess.run([sys.executable, "-m", "spbot", "services", "detect", "--root", str(debian / "x")],
                           capture_output=True, text=True, timeout=60)
    assert "no catalogue service found" in empty.stdout


# --------------------------------------------------------------------------- state, logs, actions

@pytest.fixture
def world(tmp_path) -> ServiceWorld:
    world = ServiceWorld(tmp_path)
    world.install()
    return world


async def test_unit_service_state_and_actions(world):
    world.unit("vaultwarden.service", memory=30 << 20)
    spec = resolve("vaultwarden", ServiceConfig(distro="debian"))
    control = Controller(str(world.bins.dir), 10, 10)
    state = await control.state(spec, http=False)
    assert state.running and state.memory == 30 << 20 and state.since is not None
    await control.act(spec, "stop")
    state = await control.state(spec, http=False)
    assert not state.running and state.down() == ["vaultwarden.service"]
    assert state.health_text() == "not running: vaultwarden.service"
    await control.act(spec, "start")
    assert (await control.state(spec, http=False)).running
    calls = [c.argv for c in world.bins.calls("systemctl") if c.argv[0] in ("start", "stop")]
    assert calls == [["stop", "--", "vaultwarden.service"], ["start", "--", "vaultwarden.service"]]


async def test_optional_units_count_only_when_present(world):
    world.unit("postfix.service")
    world.unit("dovecot.service")
    world.unit("rspamd.service", state="failed")
    spec = resolve("mail", ServiceConfig(distro="debian"))
    state = await Controller(str(world.bins.dir), 10, 10).state(spec)
    assert [u.unit for u in state.units] == ["postfix.service", "dovecot.service", "rspamd.service"]
    assert state.down() == ["rspamd.service"]


async def test_containers_of_a_compose_project(world):
    world.container("synapse", project="matrix", health="healthy", memory="512MiB")
    world.container("coturn", project="matrix", memory="10MiB")
    world.container("other")
    spec = resolve("synapse", ServiceConfig(compose_project="matrix"))
    control = Controller(str(world.bins.dir), 10, 10)
    state = await control.state(spec, http=False)
    assert [c.name for c in state.containers] == ["coturn", "synapse"] and state.running
    assert state.memory == 522 * 1024 ** 2 and state.units == []
    await control.act(spec, "stop")
    state = await control.state(spec, http=False)
    assert state.down() == ["coturn", "synapse"] and state.containers[0].exit_code == 137
    missing = await control.state(resolve("coturn", ServiceConfig(containers=["turn"])), http=False)
    assert missing.down() == ["turn"] and not missing.containers[0].found


async def test_logs_are_masked_and_summarised(world):
    world.unit("gitea.service", journal=[
        "2026-11-23T10:00:01+0000 srv gitea[42]: started, listening on :3000",
        "2026-11-23T10:00:02+0000 srv gitea[42]: login alice password=hunter2hunter2 ok",
        "2026-11-23T10:00:03+0000 srv gitea[42]: GET /api?access_token=abcdef123456 Authorization: Bearer abc.def.ghijklmnop",
        "2026-11-23T10:00:04+0000 srv gitea[42]: mirror https://bob:s3cret@git.example.org/x.git",
        "2026-11-23T10:00:05+0000 srv gitea[42]: ERROR cannot reach database",
    ])
    control = Controller(str(world.bins.dir), 10, 10)
    raw = await journal(control, resolve("gitea", ServiceConfig(distro="debian")), 100, 3600)
    [call] = world.bins.calls("journalctl")
    assert call.argv == ["--no-pager", "--output=short-iso", "--lines=100", "--since=-3600s", "--unit",
                         "gitea.service"]
    shown, head = summarise(mask(raw), 100)
    assert "hunter2" not in shown and "password=***" in shown
    assert "abcdef123456" not in shown and "access_token=***" in shown and "ghijklmnop" not in shown
    assert "bob:***@git.example.org" in shown and "s3cret" not in shown
    assert head == "5 line(s), 1 with errors or warnings"
    long_shown, long_head = summarise("\n".join(f"line {n}" for n in range(100)), 100)
    assert long_head == "100 line(s); the last 40 shown" and long_shown.endswith("line 99")


async def test_container_logs(world):
    world.container("vaultwarden", logs=["2026-11-23T10:00:01Z [INFO] Rocket has launched",
                                         "2026-11-23T10:00:02Z [ERROR] admin token=abcd1234efgh wrong"])
    control = Controller(str(world.bins.dir), 10, 10)
    raw = await journal(control, resolve("vaultwarden", ServiceConfig(containers=["vaultwarden"])), 20, None)
    assert "vaultwarden: 2026-11-23T10:00:01Z [INFO] Rocket has launched" in raw
    assert "token=***" in mask(raw)
    assert world.bins.calls("docker")[0].argv == ["logs", "--timestamps", "--tail", "20", "vaultwarden"]


def test_since_values():
    assert since_seconds("1h") == 3600 and since_seconds("30m") == 1800 and since_seconds(None) is None
    for bad in ("1 hour", "-1h", "1w", "1h;reboot"):
        with pytest.raises(ValueError):
            since_seconds(bad)


async def test_http_health_checks():
    async def status(request):
        return web.json_response({"installed": True, "maintenance": False})

    async def broken(request):
        return web.Response(status=503, text="down")

    app = web.Application()
    app.router.add_get("/status.php", status)
    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        ok = await check_http(HealthCheck(url=f"http://127.0.0.1:{port}/status.php", expect_text='"installed": true'))
        assert ok.ok and ok.text.startswith("HTTP 200 in ")
        bad = await check_http(HealthCheck(url=f"http://127.0.0.1:{port}/broken"))
        assert not bad.ok and "answered HTTP 503 (expected 200)" in bad.text
        text = await check_http(HealthCheck(url=f"http://127.0.0.1:{port}/status.php", expect_text="nope"))
        assert not text.ok and "without 'nope'" in text.text
    finally:
        await runner.cleanup()
    closed = await check_http(HealthCheck(url=f"http://127.0.0.1:{port}/status.php", timeout=2))
    assert not closed.ok and "cannot be reached" in closed.text
    assert await check_http(HealthCheck()) is None
