"""!services, !service restart, !cleanup, !status and the failed-unit and certificate alerts through the
real chat path: E2EE commands to a real bot process, approvals by another admin, the real scheduler.

systemctl, journalctl, nix-collect-garbage and apt-get are recording executables (tests/fakebin.py)
that print the real tools' output formats; the clean-up runs against a real temporary tree (on the
quiet /dev/shm tmpfs when there is one, so freed bytes can be checked exactly). Certificates come
from a local TLS server in this test process with certificates made by trustme.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import ssl
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trustme

from spbot.features.services import HealthSettings
from spbot.features.services.rules import tls_findings
from spbot.features.services.settings import parse_target
from spbot.render import human_bytes
from spbot.system.tls import CertInfo, CertStatus
from tests.fakebin import FakeBin, Rule
from tests.test_approvals import request_for, result_reply
from tests.test_cleanup import DISK_USAGE, NIX_DRY_RUN, NIX_GC_LOG, VACUUM, quiet_tmpfs
from tests.test_services import BACKUP, MISSING, NGINX, SHOW, TIMER

if TYPE_CHECKING:
    from .conftest import TestBot

KiB, MiB = 1024, 1024 ** 2
ADMINS = {"@alice:localhost", "@bob:localhost", "@erin:localhost"}
TIMEOUT = 30
UNITS = ["nginx.service", "restic-backup.service", "gitea.service", "restic-backup.timer"]
NOW = datetime.now(timezone.utc)


# --------------------------------------------------------------------------- the world around the bot

def set_rules(bins: FakeBin, tool: str, rules: list[Rule]) -> None:
    """Replace a fake tool's rules atomically: the bot may be calling it at this very moment."""
    path = bins.dir / f"{tool}.rules.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps([asdict(r) for r in rules]))
    os.replace(temporary, path)


def systemctl_rules(failed: str = "") -> list[Rule]:
    show = ["show", SHOW, "--no-pager", "--"]
    return [Rule(match=["list-units", "--state=failed", "--plain", "--no-legend", "--no-pager"], stdout=failed),
            Rule(match=show + UNITS, stdout="\n".join([NGINX, BACKUP, MISSING, TIMER])),
            Rule(match=show + ["nginx.service"], stdout=NGINX),
            Rule(match=["restart", "--", "nginx.service"])]


def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


@dataclass
class Machine:
    root: Path
    rotated: dict[str, int]
    debs: dict[Path, int]

    @property
    def nginx(self) -> Path:
        return self.root / "var/log/nginx"


def make_machine(base: Path) -> Machine:
    root = base / "machine"
    for sub in ("nix/store", "var/log/journal", "var/cache/apt/archives"):
        (root / sub).mkdir(parents=True)
    write(root / "etc/NIXOS", 0)
    (root / "etc/debian_version").write_text("12.8\n")
    write(root / "var/log/nginx/access.log", 300 * KiB)
    rotated = {"access.log.1": 400 * KiB, "access.log.2.gz": 200 * KiB, "error.log.3.gz": 50 * KiB}
    for name, size in rotated.items():
        write(root / "var/log/nginx" / name, size)
    debs = {root / "var/cache/apt/archives/nginx_1.22.1-9_amd64.deb": 600 * KiB,
            root / "var/cache/apt/archives/libssl3_3.0.15-1~deb12u1_amd64.deb": 2 * MiB}
    for path, size in debs.items():
        write(path, size)
    write(root / "old-root/usr/bin/bash", 1 * MiB)
    write(root / "old-root/var/lib/dpkg/status", 300 * KiB)
    return Machine(root, rotated, debs)


@dataclass
class Tls:
    context: ssl.SSLContext
    ca: trustme.CA
    ca_file: Path
    port: int
    closed_port: int

    def serve(self, hostname: str, days: float) -> None:
        """From the next handshake on, present a certificate for `hostname` valid for `days`."""
        self.ca.issue_cert(hostname, not_after=NOW + timedelta(days=days)).configure_cert(self.context)


@pytest.fixture(scope="module")
async def tls(tmp_path_factory):
    ca = trustme.CA(organization_name="Family CA")
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)

    async def answer(reader, writer):
        writer.close()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]            # nothing listens there afterwards
    tls = Tls(context, ca, ca_file, 0, closed_port)
    tls.serve("localhost", 5.5)
    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    tls.port = server.sockets[0].getsockname()[1]
    yield tls
    server.close()
    await server.wait_closed()


@dataclass
class Rig:
    bot: "TestBot"
    bins: FakeBin
    machine: Machine
    tls: Tls

    def argv(self, tool: str) -> list[list[str]]:
        """The tool's calls, without the failed-units check that polls every second."""
        return [c.argv for c in self.bins.calls(tool) if c.argv[:1] != ["list-units"]]


@pytest.fixture(scope="module")
async def rig(make_bot, tmp_path_factory, tls) -> Rig:
    base_dir = tmp_path_factory.mktemp("health")
    quiet = quiet_tmpfs()
    tree = Path(tempfile.mkdtemp(prefix="spbot-health-", dir=quiet)) if quiet else base_dir
    machine = make_machine(tree)
    (base_dir / "run/systemd/system").mkdir(parents=True)
    bins = FakeBin(base_dir)
    bins.add("systemctl", systemctl_rules())
    bins.add("journalctl", [Rule(match=["--disk-usage"], stdout=DISK_USAGE),
                            Rule(match=["--vacuum-time=7d", "--vacuum-size=200M"], stderr=VACUUM)])
    bins.add("nix-collect-garbage", [
        Rule(match=["-d", "--dry-run"], stderr=NIX_DRY_RUN, stdout="1234 store paths would be deleted\n"),
        Rule(match=["-d"], stdout="10 store paths deleted, 1.0 MiB freed\n", stderr=NIX_GC_LOG)])
    bins.add("apt-get", [Rule(match=["clean"], writes={str(p): "" for p in machine.debs})])
    m = machine.root
    bot = await make_bot("health", env=bins.env(), extra=f"""
[services]
units = ["nginx", "restic-backup.service", "gitea", "restic-backup.timer"]
tool_path = "{bins.dir}"
[cleanup]
tool_path = "{bins.dir}"
nix_marker = "{m}/etc/NIXOS"
nix_store = "{m}/nix/store"
journal_dir = "{m}/var/log/journal"
log_dirs = ["{m}/var/log/nginx"]
debian_marker = "{m}/etc/debian_version"
apt_archives = "{m}/var/cache/apt/archives"
old_root = "{m}/old-root"
[health]
failed_units_interval = "1s"
systemd_dir = "{base_dir}/run/systemd/system"
tls_domains = ["localhost:{tls.port}", "localhost:{tls.closed_port}"]
tls_interval = "1s"
tls_timeout = "3s"
tls_ca_file = "{tls.ca_file}"
renotify = "1h"
""")
    yield Rig(bot, bins, machine, tls)
    if tree != base_dir:
        shutil.rmtree(tree, ignore_errors=True)


def about(bot: "TestBot", needle: str):
    return lambda e: e.sender == bot.user_id and e.type == "m.room.message" and needle in e.body


def count(client, bot: "TestBot", needle: str) -> int:
    return sum(1 for e in client.events if about(bot, needle)(e))


# --------------------------------------------------------------------------- !services

@pytest.mark.matrix
async def test_services_table(alice, rig):
    rig.bins.clear()
    reply = await alice.command(rig.bot.room_id, "!services", rig.bot.user_id, timeout=TIMEOUT)
    assert rig.argv("systemctl") == [["show", SHOW, "--no-pager", "--", *UNITS]]
    rows = {line.split()[0]: line for line in reply.body.splitlines() if line.split()[0] in UNITS}
    assert "✅ active (running)" in rows["nginx.service"] and "46.0 MiB" in rows["nginx.service"]
    assert "2026-11-23 10:00" in rows["nginx.service"]
    assert "❌ failed, exit-code" in rows["restic-backup.service"]
    assert "❓ not found" in rows["gitea.service"]
    assert "✅ active (waiting)" in rows["restic-backup.timer"]
    assert "Not running: restic-backup.service, gitea.service." in reply.body
    assert "<table>" in reply.content["formatted_body"]


@pytest.mark.matrix
async def test_service_restart_needs_approval_and_runs_systemctl_with_argv(alice, bob, rig):
    rig.bins.clear()
    command_id, request, rid = await request_for(alice, rig.bot, "!service restart nginx")
    assert "nginx.service is ✅ active (running) since 2026-11-23 10:00" in request.body
    assert not any(argv[0] == "restart" for argv in rig.argv("systemctl"))    # nothing before approval
    await bob.command(rig.bot.room_id, f"!approve {rid}", rig.bot.user_id, timeout=TIMEOUT)
    result = await result_reply(alice, command_id, rig.bot, "restarted", timeout=TIMEOUT)
    assert result.body == "✅ nginx.service restarted: active (running) since 10:00:01."
    assert ["restart", "--", "nginx.service"] in rig.argv("systemctl")


@pytest.mark.matrix
@pytest.mark.parametrize("text, error", [
    ("!service restart sshd", "⚠️ <unit>: sshd.service is not one of the configured units: nginx.service, "
                              "restic-backup.service, gitea.service, restic-backup.timer"),
    ("!service restart 'nginx;reboot'", "⚠️ <unit>: 'nginx;reboot' is not a valid unit name"),
    ("!service restart --force", "⚠️ unknown option --force"),
])
async def test_service_restart_refuses_bad_units_before_asking(alice, rig, text, error):
    rig.bins.clear()
    reply = await alice.command(rig.bot.room_id, text, rig.bot.user_id, timeout=TIMEOUT)
    assert reply.body.startswith(error), reply.body
    assert not reply.body.startswith("🔐")
    assert not any(argv[0] == "restart" for argv in rig.argv("systemctl"))


# --------------------------------------------------------------------------- !cleanup

def item_rows(body: str) -> dict[str, str]:
    """A list reply's items by head: the item's line and, below it after a newline, its note."""
    rows: dict[str, str] = {}
    last = None
    for line in body.splitlines()[1:]:
        if line.startswith("   ") and last is not None:
            rows[last] += "\n" + line.strip()
        elif " — " in line:
            last = line.split(" — ")[0]
            rows[last] = line
    return rows


@pytest.mark.matrix
async def test_cleanup_dry_run_reports_and_changes_nothing(alice, rig):
    rig.bins.clear()
    reply = await alice.command(rig.bot.room_id, "!cleanup", rig.bot.user_id, timeout=TIMEOUT)
    rows = item_rows(reply.body)
    assert rows["old NixOS generations (nix-collect-garbage)"].startswith(
        "old NixOS generations (nix-collect-garbage) — ?\n2 old generation(s) to remove, 1234 store paths")
    assert "~1.3 GiB" in rows["systemd journal (journalctl --vacuum)"]
    assert "650.0 KiB" in rows["rotated logs"] and "3 rotated log file(s)" in rows["rotated logs"]
    assert "2.6 MiB" in rows["package cache (apt-get clean)"]
    assert "1.3 MiB" in rows["previous system (/old-root)"]
    assert "Would free about 1.3 GiB plus what the steps marked ? free. To do it: !cleanup run" in reply.body
    assert rig.argv("nix-collect-garbage") == [["-d", "--dry-run"]]
    assert rig.argv("journalctl") == [["--disk-usage"]] and rig.argv("apt-get") == []
    assert all((rig.machine.nginx / name).exists() for name in rig.machine.rotated)
    assert (rig.machine.root / "old-root").is_dir()


@pytest.mark.matrix
async def test_cleanup_run_goes_through_approval_and_measures(alice, bob, rig):
    rig.bins.clear()
    command_id, request, rid = await request_for(alice, rig.bot, "!cleanup run")
    assert "Would free about 1.3 GiB or more." in request.body
    assert rig.argv("nix-collect-garbage") == [["-d", "--dry-run"]]      # the preview's dry run
    assert rig.argv("journalctl") == [["--disk-usage"]] and rig.argv("apt-get") == []
    assert (rig.machine.root / "old-root").is_dir()
    rig.bins.clear()
    await bob.command(rig.bot.room_id, f"!approve {rid}", rig.bot.user_id, timeout=TIMEOUT)
    result = await result_reply(alice, command_id, rig.bot, "Clean-up freed", timeout=60)

    assert rig.argv("nix-collect-garbage") == [["-d"]]
    assert rig.argv("journalctl") == [["--vacuum-time=7d", "--vacuum-size=200M"]]
    assert rig.argv("apt-get") == [["clean"]]
    assert rig.bins.calls("apt-get")[0].env["DEBIAN_FRONTEND"] == "noninteractive"
    assert not any((rig.machine.nginx / name).exists() for name in rig.machine.rotated)
    assert (rig.machine.nginx / "access.log").exists()
    assert not (rig.machine.root / "old-root").exists()
    assert all(p.stat().st_size == 0 for p in rig.machine.debs)

    rows = item_rows(result.body)
    assert "1.0 MiB\n✅ 2 generation(s) and 10 store paths removed" in rows["old NixOS generations (nix-collect-garbage)"]
    assert "64.0 MiB\n✅ 2 archived journal file(s) deleted" in rows["systemd journal (journalctl --vacuum)"]
    assert "650.0 KiB\n✅ 3 rotated log file(s) deleted" in rows["rotated logs"]
    assert "✅ 2 cached package(s) removed" in rows["package cache (apt-get clean)"]
    assert "✅ 2 file(s) removed from" in rows["previous system (/old-root)"]
    assert "Disks now: /" in result.body
    freed = re.match(r"✅ Clean-up freed ([\d.]+) (KiB|MiB)", result.body)
    assert freed, result.body
    if quiet_tmpfs():                 # the free space of a quiet tmpfs moves only by what was removed
        expected = sum(rig.machine.rotated.values()) + sum(rig.machine.debs.values()) + 1324 * KiB
        measured = float(freed.group(1)) * (MiB if freed.group(2) == "MiB" else KiB)
        assert abs(measured - expected) <= 0.2 * MiB, (human_bytes(expected), result.body)


# --------------------------------------------------------------------------- !status and alerts

@pytest.mark.matrix
async def test_status_has_server_disk_and_failed_units_lines(alice, rig):
    reply = await alice.command(rig.bot.room_id, "!status", rig.bot.user_id, timeout=TIMEOUT)
    assert re.search(r"^server: up \S+ · load [\d.]+ [\d.]+ [\d.]+ \(\d+ CPUs\) · memory [\d.]+ \S+ of "
                     r"[\d.]+ \S+ used \(\d+%\)$", reply.body, re.M), reply.body
    assert re.search(r"^disks: / \d+% \([\d.]+ \S+ free\)", reply.body, re.M)
    assert "\nfailed units: none" in reply.body


@pytest.mark.matrix
async def test_failed_units_alert_and_recover(alice, rig):
    set_rules(rig.bins, "systemctl", systemctl_rules(
        "restic-backup.service loaded failed failed Restic backup of nextcloud\n"
        "● acme-example.org.service loaded failed failed Renew ACME certificate for example.org\n"))
    ours = await alice.wait_for(about(rig.bot, "restic-backup.service has failed"), TIMEOUT)
    assert "🚨 restic-backup.service has failed (Restic backup of nextcloud)" in ours.body
    assert "What to do: try !service restart restic-backup.service" in ours.body
    assert set(ours.content["m.mentions"]["user_ids"]) == ADMINS
    other = await alice.wait_for(about(rig.bot, "acme-example.org.service has failed"), TIMEOUT)
    assert "⚠️ acme-example.org.service has failed" in other.body
    assert "journalctl -u acme-example.org.service -n 50" in other.body
    reply = await alice.command(rig.bot.room_id, "!status", rig.bot.user_id, timeout=TIMEOUT)
    assert "failed units: restic-backup.service, acme-example.org.service ❌" in reply.body
    await asyncio.sleep(3)
    assert count(alice, rig.bot, "has failed") == 2                 # one alert each, no repeats

    set_rules(rig.bins, "systemctl", systemctl_rules(""))
    await alice.wait_for(about(rig.bot, "✅ resolved: restic-backup.service runs again"), TIMEOUT)
    await alice.wait_for(about(rig.bot, "✅ resolved: acme-example.org.service runs again"), TIMEOUT)


@pytest.mark.matrix
async def test_certificate_alerts(alice, rig):
    tls = rig.tls
    name = f"localhost:{tls.port}"
    expiring = await alice.wait_for(about(rig.bot, f"the certificate of {name} expires in"), TIMEOUT)
    date = (NOW + timedelta(days=5.5)).strftime("%Y-%m-%d")
    assert f"⚠️ the certificate of {name} expires in 5 days ({date})" in expiring.body
    assert "acme" in expiring.body and set(expiring.content["m.mentions"]["user_ids"]) == ADMINS
    closed = await alice.wait_for(about(rig.bot, f"localhost:{tls.closed_port} cannot be reached"), TIMEOUT)
    assert "⚠️" in closed.body and "!services" in closed.body

    tls.serve("localhost", 90)                                   # renewed
    renewed = await alice.wait_for(about(rig.bot, f"resolved: the certificate of {name} is renewed"), TIMEOUT)
    assert (NOW + timedelta(days=90)).strftime("%Y-%m-%d") in renewed.body

    tls.serve("cloud.example.org", 90)                          # the wrong certificate
    wrong = await alice.wait_for(about(rig.bot, f"the certificate of {name} is not valid"), TIMEOUT)
    assert "🚨" in wrong.body and "localhost" in wrong.body
    tls.serve("localhost", 90)
    await alice.wait_for(about(rig.bot, f"resolved: the certificate of {name} is accepted again"), TIMEOUT)
    assert count(alice, rig.bot, f"the certificate of {name} expires in") == 1
    assert count(alice, rig.bot, f"localhost:{tls.closed_port} cannot be reached") == 1


# --------------------------------------------------------------------------- the certificate rules

def status(days: float | None, kind: str | None = None, error: str | None = None) -> CertStatus:
    cert = None if days is None else CertInfo(subject="CN=example.org", issuer="CN=R11", sans=["example.org"],
                                              not_before=NOW - timedelta(days=60),
                                              not_after=NOW + timedelta(days=days))
    return CertStatus(host="example.org", port=443, server_name="example.org", ok=kind is None,
                      error_kind=kind, error=error, cert=cert, days_left=days)


@pytest.mark.parametrize("given, expected", [
    (status(60), {}),
    (status(13.5), {"tls:example.org:expiry": "warning"}),
    (status(2.5), {"tls:example.org:expiry": "critical"}),
    (status(-1, "expired", "certificate has expired"), {"tls:example.org:expiry": "critical"}),
    (status(60, "hostname_mismatch", "Hostname mismatch"), {"tls:example.org:invalid": "critical"}),
    (status(None, "verification", "unable to get local issuer certificate"),
     {"tls:example.org:invalid": "critical"}),
    (status(None, "timeout", "no TLS answer within 10s"), {"tls:example.org:unreachable": "warning"}),
])
def test_certificate_rules(given, expected):
    findings = tls_findings(given, HealthSettings())
    assert {f.key: f.severity for f in findings if f.severity} == expected
    if given.error_kind == "timeout":
        assert [f.key for f in findings] == ["tls:example.org:unreachable"]   # expiry left as it was


def test_domain_targets():
    assert parse_target("cloud.example.org") == ("cloud.example.org", 443)
    assert parse_target("localhost:8443") == ("localhost", 8443)
    for bad in ("https://example.org", "example.org:http", "example.org:0", ":443"):
        with pytest.raises(ValueError):
            parse_target(bad)
