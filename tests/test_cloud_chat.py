"""!server, !volume and !dns through the real path: admins' E2EE clients talk to a real bot process
whose [hetzner] and [dns] point at the local fakes (hcloud and httpx speak to them over loopback),
and whose PATH starts with recording findmnt, resize2fs and xfs_growfs."""
from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from spbot.providers.dns.records import DomainConfig, expected_records
from spbot.features.server.hetzner import HetznerServer
from spbot.features.server.offer import grow_offer_for
from spbot.features.server.settings import HetznerConfig
from spbot.render import human_bytes
from tests.fakebin import FakeBin, Rule
from tests.fakes import Request, Response
from tests.fakes.cloudflare_api import FakeCloudflare
from tests.fakes.hetzner_api import FakeHetzner

from .conftest import wait_answering
from .test_approvals import request_for, result_reply

if TYPE_CHECKING:
    from .conftest import TestBot

pytestmark = pytest.mark.matrix

HZ_TOKEN = "hz-chat-secret-0123456789"
CF_TOKEN = "cf-chat-secret-abcdef"
DOMAIN = "example.org"
IPV4, IPV6, OLD_IP = "203.0.113.10", "2001:db8:1234::1", "198.51.100.7"
DKIM = "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"
GIB = 2**30
JOB_TIMEOUT = 30


@dataclass
class Cloud:
    bot: TestBot
    hetzner: FakeHetzner
    cloudflare: FakeCloudflare
    bins: FakeBin
    dev: Path
    by_id: Path
    token_file: Path
    volume_gb: dict[str, int] = field(default_factory=lambda: {"/mnt/data": 50,
                                                                "/mnt/archive": 20})

    def findmnt_answer(self, volume_gb: dict[str, int]) -> str:
        """findmnt --json --bytes --list output; a volume's filesystem is 98 % of it."""
        def fs(target: str, source: str, fstype: str, size: int, used: int) -> dict:
            return {"target": target, "source": source, "fstype": fstype, "size": size,
                    "used": used, "avail": size - used}
        return json.dumps({"filesystems": [
            fs("/", str(self.dev / "sda1"), "ext4", 38 * GIB, 21 * GIB),
            fs("/run", "tmpfs", "tmpfs", GIB // 2, 2**20),
            fs("/mnt/data", str(self.dev / "sdb"), "ext4",
               self.fs_size("/mnt/data", volume_gb), 40 * GIB),
            fs("/mnt/archive", str(self.dev / "sdc"), "xfs",
               self.fs_size("/mnt/archive", volume_gb), 5 * GIB),
        ]})

    def fs_size(self, mount: str, volume_gb: dict[str, int] | None = None) -> int:
        return int((volume_gb or self.volume_gb)[mount] * GIB * 0.98)

    def install_findmnt(self) -> None:
        self.bins.add("findmnt", [Rule(stdout=self.findmnt_answer(self.volume_gb))])

    def expect_growth(self, tool: str, argv: list[str], mount: str, new_gb: int) -> None:
        """`tool` with `argv` succeeds and, like the real one, changes what findmnt reports."""
        after = {**self.volume_gb, mount: new_gb}
        findmnt_rules = json.dumps([asdict(Rule(stdout=self.findmnt_answer(after)))])
        self.bins.add(tool, [Rule(match=argv, stdout=f"{tool}: grown\n",
                                  writes={str(self.bins.dir / "findmnt.rules.json"):
                                          findmnt_rules})])
        self.volume_gb = after


def pricing(request: Request) -> Response:
    """GET /pricing, the part of Hetzner's price list the bot reads."""
    return Response(200, {"pricing": {
        "currency": "EUR", "vat_rate": "19.00",
        "volume": {"price_per_gb_month": {"net": "0.0440000000", "gross": "0.0523600000"}},
        "image": {"price_per_gb_month": {"net": "0.0110000000", "gross": "0.0130900000"}},
    }})


def seed_drifted_zone(fake: FakeCloudflare) -> None:
    """The expected records with `git A` missing and `cloud A` and SPF on an old address,
    plus a TXT record that is not ours."""
    config = DomainConfig(domain=DOMAIN, ipv4=IPV4, ipv6=IPV6, subdomains=("cloud", "git"),
                          dkim=DKIM)
    fake.add_zone(DOMAIN)
    for record in expected_records(config):
        content = record.content
        if (record.name, record.type) == ("git", "A"):
            continue
        if (record.name, record.type) == ("cloud", "A") or record.key[2] == "spf":
            content = content.replace(IPV4, OLD_IP)
        fake.add_record(DOMAIN, record.type, record.fqdn(DOMAIN), content, record.ttl,
                        record.priority)
    fake.add_record(DOMAIN, "TXT", DOMAIN, "google-site-verification=abc123")


@pytest.fixture(scope="module")
async def cloud(make_bot, tmp_path_factory) -> Cloud:
    root = tmp_path_factory.mktemp("cloud")
    hetzner, cloudflare = FakeHetzner(token=HZ_TOKEN), FakeCloudflare(token=CF_TOKEN)
    hetzner.start()
    cloudflare.start()
    hetzner.route("GET", r"/v1/pricing", pricing)
    hetzner.volumes[101]["server"] = 42  # "archive" is attached too, and mounted as xfs
    hetzner.server()["volumes"].append(101)
    seed_drifted_zone(cloudflare)

    dev, by_id = root / "dev", root / "by-id"
    dev.mkdir()
    by_id.mkdir()
    for name in ("sda1", "sdb", "sdc"):
        (dev / name).touch()
    (by_id / "scsi-0HC_Volume_100").symlink_to(dev / "sdb")
    (by_id / "scsi-0HC_Volume_101").symlink_to(dev / "sdc")
    (by_id / "scsi-0QEMU_QEMU_HARDDISK_drive-scsi0-part1").symlink_to(dev / "sda1")
    hz_token, cf_token = root / "hetzner.token", root / "cloudflare.token"
    hz_token.write_text(HZ_TOKEN + "\n")
    cf_token.write_text(CF_TOKEN + "\n")

    state = Cloud(None, hetzner, cloudflare, FakeBin(root), dev, by_id, hz_token)
    state.install_findmnt()
    usage_file = root / "usage.json"
    write_usage(usage_file, {"/": 40, "/mnt/data": 50})
    extra = f"""
[hetzner]
token = {{ file = "{hz_token}" }}
server = "family-server"
api_endpoint = "{hetzner.url}"
timeout = "5s"
poll_interval = 0.05
action_timeout = "20s"
shutdown_timeout = "2s"
max_retries = 3
backoff_base = 0.05
backoff_cap = 0.2
rate_limit_max_wait = "3s"
by_id_dir = "{by_id}"

[dns]
provider = "cloudflare"
domain = "{DOMAIN}"
token = {{ file = "{cf_token}" }}
base_url = "{cloudflare.url}"
ipv4 = "{IPV4}"
ipv6 = "{IPV6}"
subdomains = ["cloud", "git"]
dkim = "{DKIM}"
check_interval = "1s"
backoff = 0.05

[disk]
usage_source = "{usage_file}"
sample_interval = "1s"
forecast_days = 0
"""
    state.bot = await make_bot("cloud", extra=extra, env=state.bins.env())
    yield state
    state.bot.stop()
    hetzner.stop()
    cloudflare.stop()


def write_usage(path, percents: dict[str, float]) -> None:
    """The disk usage the cloud bot's sampler reads (`[disk] usage_source`)."""
    mounts = [{"mountpoint": m, "device": f"/dev/{m.strip('/').replace('/', '-') or 'root'}",
               "fstype": "ext4", "total": 100 * GIB, "used": int(p * GIB), "free": int((100 - p) * GIB)}
              for m, p in percents.items()]
    path.with_suffix(".tmp").write_text(json.dumps({"mounts": mounts}))
    path.with_suffix(".tmp").replace(path)


async def approve(bob, bot: TestBot, request_id: int) -> None:
    answer = await bob.command(bot.room_id, f"!approve {request_id}", bot.user_id)
    assert answer.body == f"request #{request_id} approved"


async def until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


# -- !server -------------------------------------------------------------------------------


async def test_server_shows_the_facts(alice, cloud):
    bot = cloud.bot
    reply = await alice.command(bot.room_id, "!server", bot.user_id, timeout=JOB_TIMEOUT)
    body = reply.body
    assert body.startswith("🖥 family-server: running")
    assert "type: cx22: 2 vCPU, 4 GB RAM, 40 GB disk" in body
    assert "location: fsn1 (Falkenstein)" in body
    assert "IPv4: 203.0.113.10" in body and "IPv6: 2001:db8:1234::/64" in body
    assert "traffic: 115.0 GiB out of 20.0 TiB included this month (0.6%)" in body
    assert "price: €3.79/month (€4.51 incl. VAT)" in body
    assert "volumes: 2 attached" in body and "bot: runs on another machine" in body
    assert "<b>price</b>: €3.79/month" in reply.content["formatted_body"]


async def test_server_metrics_as_sparklines(alice, cloud):
    bot = cloud.bot
    reply = await alice.command(bot.room_id, "!server metrics 1h", bot.user_id,
                                timeout=JOB_TIMEOUT)
    lines = reply.body.splitlines()
    assert lines[0] == "📈 family-server, last 1h (one point per 1 min)"
    rows = {line.split("  ")[0].strip(): line for line in lines[2:]}
    assert set(rows) == {"CPU", "disk read IO/s", "disk write IO/s", "disk read", "disk write",
                         "network in packets/s", "network out packets/s", "network in",
                         "network out"}
    assert "0.0 %" in rows["CPU"] and "13.5 %" in rows["CPU"]
    assert "B/s" in rows["network in"]
    assert any(bar in rows["CPU"] for bar in "▂▃▄▅▆▇█")
    assert "<table>" in reply.content["formatted_body"]


async def test_token_rejected(alice, cloud):
    bot, fake = cloud.bot, cloud.hetzner
    fake.token = "a-token-that-was-revoked"
    try:
        reply = await alice.command(bot.room_id, "!server", bot.user_id, timeout=JOB_TIMEOUT)
    finally:
        fake.token = HZ_TOKEN
    assert reply.body.startswith(
        "⚠️ Hetzner rejected the API token: unable to authenticate. Create a new Read & Write "
        "API token in the Hetzner Cloud Console")
    assert HZ_TOKEN not in reply.body


async def test_rate_limit_is_waited_out(alice, cloud):
    bot, fake = cloud.bot, cloud.hetzner
    fake.rate_limit(times=2)
    reply = await alice.command(bot.room_id, "!server", bot.user_id, timeout=JOB_TIMEOUT)
    assert reply.body.startswith("🖥 family-server: running")
    assert all(f.times == 0 for f in fake.faults)
    assert bot.log().count("answered 429 (rate_limit_exceeded)") >= 2


async def test_snapshot_and_a_failed_action(alice, cloud):
    bot, fake = cloud.bot, cloud.hetzner
    command_id = await alice.send(bot.room_id, "!server snapshot before the upgrade")
    reply = await result_reply(alice, command_id, bot, "Snapshot #", JOB_TIMEOUT)
    assert "“before the upgrade” is available: 1.84 GB compressed, of a 40 GB disk." in reply.body

    fake.fail_action("create_image", message="disk is busy")
    command_id = await alice.send(bot.room_id, "!server snapshot")
    reply = await result_reply(alice, command_id, bot, "failed", JOB_TIMEOUT)
    assert reply.body == ("⚠️ Hetzner action “create_image” failed while creating a snapshot: "
                          "disk is busy (action_failed).")


async def test_reboot_with_approval(alice, bob, cloud):
    bot, fake = cloud.bot, cloud.hetzner
    command_id, message, rid = await request_for(alice, bot, "!server reboot")
    assert "Soft reboot of family-server (cx22, fsn1, 203.0.113.10)" in message.body
    assert "I run on this server" not in message.body
    assert "reboot_server" not in fake.commands()
    await approve(bob, bot, rid)
    reply = await result_reply(alice, command_id, bot, "rebooted", JOB_TIMEOUT)
    assert reply.body.startswith("✅ family-server rebooted: Hetzner's reboot action #")
    assert reply.body.endswith("succeeded; the server is running.")
    assert fake.commands().count("reboot_server") == 1


async def test_reboot_of_own_host_is_reported_after_restart(alice, bob, cloud):
    bot, fake = cloud.bot, cloud.hetzner
    fake.server()["public_net"]["ipv4"]["ip"] = "127.0.0.1"  # the bot now runs "on" it
    fake.action_polls = 10**6  # the reboot never finishes while the bot is up
    try:
        command_id, message, rid = await request_for(alice, bot, "!server reboot")
        assert "I run on this server: I go down with it and report here" in message.body
        reboots = fake.commands().count("reboot_server")
        await approve(bob, bot, rid)
        await until(lambda: fake.commands().count("reboot_server") == reboots + 1)
        action_id = max(fake.actions)
        await until(lambda: fake.count("GET", rf"/v1/actions/{action_id}") > 0)
        bot.stop()  # as the reboot would
        fake.action_polls = 2
        bot.start()
        await wait_answering(alice, bot)
        reply = await result_reply(alice, command_id, bot, "rebooted (job #", JOB_TIMEOUT)
    finally:
        fake.server()["public_net"]["ipv4"]["ip"] = IPV4
        fake.action_polls = 2
    assert "Hetzner's reboot action #" in reply.body
    assert "succeeded; the server is running." in reply.body
    assert "note above about the job ending is about that wait" in reply.body  # no real boot
    ended = await result_reply(alice, command_id, bot, "ended when the bot stopped, as expected: "
                               "the server was rebooting, and I run on it")
    assert ended.received < reply.received
    assert "was interrupted" not in " ".join(e.body for e in alice.replies_to(command_id, bot.user_id))
    assert fake.commands().count("reboot_server") == reboots + 1


async def test_resize_of_own_host_is_refused(alice, bob, cloud):
    bot, fake = cloud.bot, cloud.hetzner
    fake.server()["public_net"]["ipv4"]["ip"] = "127.0.0.1"
    try:
        command_id, message, rid = await request_for(alice, bot, "!server resize cx32")
        assert "⚠️ This will be refused: I run on family-server myself" in message.body
        await approve(bob, bot, rid)
        reply = await result_reply(alice, command_id, bot, "Resize it in the Hetzner Cloud Console",
                                     JOB_TIMEOUT)
    finally:
        fake.server()["public_net"]["ipv4"]["ip"] = IPV4
    assert "I would go down with it before I could change the type" in reply.body
    assert "Resize it in the Hetzner Cloud Console" in reply.body
    assert "shutdown_server" not in fake.commands()


async def test_resize_with_approval(alice, bob, cloud):
    bot, fake = cloud.bot, cloud.hetzner
    command_id, message, rid = await request_for(alice, bot, "!server resize cx32")
    assert ("family-server: cx22: 2 vCPU, 4 GB RAM, 40 GB disk → cx32: 4 vCPU, 8 GB RAM, "
            "80 GB disk.") in message.body
    assert ("Price: €3.79 → €6.80 per month, +€3.01/month (+€3.58 incl. VAT).") in message.body
    assert "The disk stays 40 GB" in message.body
    assert "shutdown_server" not in fake.commands()
    await approve(bob, bot, rid)
    reply = await result_reply(alice, command_id, bot, "is now", JOB_TIMEOUT)
    assert reply.body.splitlines()[0] == (
        "✅ family-server is now a cx32 (was cx22): 4 vCPU, 8 GB RAM, 40 GB disk (the type "
        "offers 80 GB).")
    assert "Status: running." in reply.body
    # Hetzner starts the server itself after change_type: no power-on is sent
    assert fake.commands()[-2:] == ["shutdown_server", "change_server_type"]
    server = fake.server()
    assert (server["server_type"]["name"], server["primary_disk_size"], server["status"]) == (
        "cx32", 40, "running")


# -- !volume -------------------------------------------------------------------------------


async def test_volume_list(alice, cloud):
    bot = cloud.bot
    reply = await alice.command(bot.room_id, "!volume list", bot.user_id, timeout=JOB_TIMEOUT)
    rows = {line.split()[0]: line for line in reply.body.splitlines()[2:]}
    assert "50 GB" in rows["data"] and "family-server" in rows["data"]
    assert "/mnt/data" in rows["data"] and "ext4, 40.0 GiB of 49.0 GiB used (82%)" in rows["data"]
    assert "/mnt/archive" in rows["archive"] and "xfs" in rows["archive"]
    assert [c.argv for c in cloud.bins.calls("findmnt")][-1] == [
        "--json", "--bytes", "--list", "--output", "TARGET,SOURCE,FSTYPE,SIZE,USED,AVAIL"]


async def test_volume_grow_ext4(alice, bob, cloud):
    bot, fake = cloud.bot, cloud.hetzner
    device = str(cloud.dev / "sdb")
    before = cloud.fs_size("/mnt/data")
    cloud.expect_growth("resize2fs", ["--", device], "/mnt/data", 60)
    command_id, message, rid = await request_for(alice, bot, "!volume grow /mnt/data +10")
    assert ("Volume “data” (#100) at /mnt/data: 50 GB → 60 GB (+10 GB), "
            "+€0.44/month (+€0.52 incl. VAT).") in message.body
    assert "Then resize2fs grows the ext4 filesystem while it stays mounted." in message.body
    assert fake.volumes[100]["size"] == 50
    await approve(bob, bot, rid)
    reply = await result_reply(alice, command_id, bot, "grew", JOB_TIMEOUT)
    assert reply.body.startswith(
        "✅ /mnt/data: volume “data” grew 50 → 60 GB, +€0.44/month (+€0.52 incl. VAT).")
    assert (f"The ext4 filesystem, as the system sees it: {human_bytes(before)} → "
            f"{human_bytes(cloud.fs_size('/mnt/data'))}.") in reply.body
    assert fake.volumes[100]["size"] == 60
    assert [c.argv for c in cloud.bins.calls("resize2fs")] == [["--", device]]


async def test_volume_grow_xfs_to_a_total(alice, bob, cloud):
    bot, fake = cloud.bot, cloud.hetzner
    cloud.expect_growth("xfs_growfs", ["--", "/mnt/archive"], "/mnt/archive", 30)
    command_id, message, rid = await request_for(alice, bot, "!volume grow /mnt/archive 30")
    assert "“archive” (#101) at /mnt/archive: 20 GB → 30 GB (+10 GB)" in message.body
    await approve(bob, bot, rid)
    reply = await result_reply(alice, command_id, bot, "grew", JOB_TIMEOUT)
    assert "volume “archive” grew 20 → 30 GB" in reply.body
    assert "The xfs filesystem, as the system sees it: 19.6 GiB → 29.4 GiB." in reply.body
    assert fake.volumes[101]["size"] == 30
    assert [c.argv for c in cloud.bins.calls("xfs_growfs")] == [["--", "/mnt/archive"]]


async def test_volume_grown_but_filesystem_step_failed(alice, bob, cloud):
    bot, fake = cloud.bot, cloud.hetzner
    device = str(cloud.dev / "sdb")
    cloud.bins.add("resize2fs", [Rule(match=["--", device], exit=1, stderr=(
        "resize2fs 1.47.0 (5-Feb-2023)\n"
        "resize2fs: Permission denied to resize filesystem\n"))])
    command_id, _, rid = await request_for(alice, bot, "!volume grow /mnt/data 65")
    await approve(bob, bot, rid)
    reply = await result_reply(alice, command_id, bot, "failed", JOB_TIMEOUT)
    assert reply.body.splitlines() == [
        "⚠️ Volume “data” is now 65 GB at Hetzner (billed from now), but resize2fs failed: "
        "resize2fs 1.47.0 (5-Feb-2023)",
        "resize2fs: Permission denied to resize filesystem",
        f"Grow the filesystem on the server by hand: resize2fs -- {device}"]
    assert fake.volumes[100]["size"] == 65


async def test_grow_offer_for_disk_alerts(cloud):
    settings = HetznerConfig.model_validate({
        "token": {"file": str(cloud.token_file)}, "server": "family-server",
        "api_endpoint": cloud.hetzner.url, "by_id_dir": str(cloud.by_id), "poll_interval": 0.05})
    client = HetznerServer(settings.provider_settings(HZ_TOKEN))
    env = cloud.bins.env()
    size = cloud.hetzner.volumes[100]["size"]
    offer = await grow_offer_for(settings, client, "/mnt/data", env)
    assert offer.command == "!volume grow /mnt/data +10"
    assert offer.text == (
        f"/mnt/data is Hetzner volume “data” ({size} GB). React ✅ to grow it by 10 GB to "
        f"{size + 10} GB for +€0.44/month (+€0.52 incl. VAT) (another admin approves), or send "
        "!volume grow /mnt/data +10.")
    assert await grow_offer_for(settings, client, "/", env) is None
    assert await grow_offer_for(settings, client, "/nowhere", env) is None


# -- !dns ----------------------------------------------------------------------------------


def drift_alerts(alice, bot: TestBot) -> list:
    return [e for e in alice.events if e.sender == bot.user_id
            and "DNS of example.org at Cloudflare differs" in e.body]


async def test_dns_check_shows_drift_and_the_alert_comes_once(alice, cloud):
    bot = cloud.bot
    alert = await alice.wait_for(lambda e: e in drift_alerts(alice, bot), timeout=JOB_TIMEOUT)
    assert "cloud A different, git A missing, @ TXT different" in alert.body
    assert "!dns sync" in alert.body
    assert set(alert.content["m.mentions"]["user_ids"]) == {
        "@alice:localhost", "@bob:localhost", "@erin:localhost"}

    reply = await alice.command(bot.room_id, "!dns check", bot.user_id, timeout=JOB_TIMEOUT)
    lines = reply.body.splitlines()
    assert lines[0] == "🌐 DNS of example.org at Cloudflare: 7 ok, 1 missing, 2 different"
    rows = {" ".join(line.split()[2:4]): line for line in lines[2:-1]}
    assert rows["git A"].split()[-2:] == [IPV4, "–"]
    assert rows["cloud A"].split()[-2:] == [IPV4, OLD_IP]
    assert rows["cloud AAAA"].endswith("same")
    assert "!dns sync writes the missing and different ones" in reply.body

    await asyncio.sleep(3)  # three more scheduled checks: still the same alert
    assert len(drift_alerts(alice, bot)) == 1


async def test_dns_sync_with_approval(alice, bob, cloud):
    bot, fake = cloud.bot, cloud.cloudflare
    command_id, message, rid = await request_for(alice, bot, "!dns sync")
    assert "3 change(s) at Cloudflare for example.org:" in message.body
    assert f"• create git A {IPV4}" in message.body
    assert f"• update cloud A {IPV4} (now {OLD_IP})" in message.body
    await approve(bob, bot, rid)
    reply = await result_reply(alice, command_id, bot, "change(s) made", JOB_TIMEOUT)
    assert reply.body.splitlines() == [
        "✅ DNS of example.org at Cloudflare: 3 change(s) made.",
        f"• updated cloud A {IPV4} (was {OLD_IP})",
        f"• created git A {IPV4}",
        f'• updated @ TXT "v=spf1 a mx ip4:{IPV4} -all" (was v=spf1 a mx ip4:{OLD_IP} -all)',
        "All 10 expected records match now.",
    ]
    contents = {(r["name"], r["type"], r["content"]) for r in fake.zone_records(DOMAIN)}
    assert (f"git.{DOMAIN}", "A", IPV4) in contents
    assert (DOMAIN, "TXT", "google-site-verification=abc123") in contents
    await alice.wait_for(lambda e: e.sender == bot.user_id and e.body.startswith(
        "✅ resolved: DNS of example.org matches the configuration again"), JOB_TIMEOUT)
    check = await alice.command(bot.room_id, "!dns check", bot.user_id, timeout=JOB_TIMEOUT)
    assert check.body.splitlines()[0].endswith("10 ok, 0 missing, 0 different")


async def test_dns_cname_conflict_is_reported_and_replaced_after_approval(alice, bob, cloud):
    """`git` becomes a CNAME: !dns check calls it a conflict (not "missing"), plain !dns sync
    would skip it, --replace-cname replaces it in one batch after approval."""
    bot, fake = cloud.bot, cloud.cloudflare
    for record in fake.zone_records(DOMAIN):
        if record["name"] == f"git.{DOMAIN}":
            del fake.records[record["id"]]
    fake.add_record(DOMAIN, "CNAME", f"git.{DOMAIN}", "code.example.net")
    check = await alice.command(bot.room_id, "!dns check", bot.user_id, timeout=JOB_TIMEOUT)
    assert check.body.splitlines()[0] == (
        "🌐 DNS of example.org at Cloudflare: 8 ok, 0 missing, 0 different, "
        "2 in conflict with a CNAME")
    assert "⛔ git is a CNAME to code.example.net: DNS allows no other record next to it" \
        in check.body
    assert "`!dns sync --replace-cname` replaces the CNAME" in check.body

    command_id, message, rid = await request_for(alice, bot, "!dns sync --replace-cname")
    assert f"• replace the CNAME git → code.example.net with git A {IPV4}" in message.body
    await approve(bob, bot, rid)
    reply = await result_reply(alice, command_id, bot, "change(s) made", JOB_TIMEOUT)
    assert reply.body.splitlines()[:3] == [
        "✅ DNS of example.org at Cloudflare: 2 change(s) made.",
        f"• replaced the CNAME (to code.example.net) with git A {IPV4}",
        f"• replaced the CNAME (to code.example.net) with git AAAA {IPV6}"]
    git = {r["type"] for r in fake.zone_records(DOMAIN) if r["name"] == f"git.{DOMAIN}"}
    assert git == {"A", "AAAA"}


async def test_no_token_in_the_log(cloud):
    log = cloud.bot.log()
    assert HZ_TOKEN not in log and CF_TOKEN not in log


# -- disk alert → grow offer ----------------------------------------------------------------


async def test_a_full_volume_alert_offers_to_grow_it_and_a_checkmark_starts_the_approval(alice, bob, cloud):
    bot = cloud.bot
    size = cloud.hetzner.volumes[100]["size"]
    device = str(cloud.dev / "sdb")
    cloud.expect_growth("resize2fs", ["--", device], "/mnt/data", size + 10)
    write_usage(cloud_usage(cloud), {"/": 40, "/mnt/data": 97})
    alert = await alice.wait_for(lambda e: e.sender == bot.user_id and "/mnt/data is almost full" in e.body,
                                 timeout=30)
    assert f"It is Hetzner volume “data” ({size} GB): growing it to {size + 10} GB costs +€0.44/month" \
        in alert.body
    assert "react ✅ to this message to run !volume grow /mnt/data +10" in alert.body
    assert "@bob:localhost" in alert.content["m.mentions"]["user_ids"]
    assert "It is Hetzner volume" not in [e.body for e in alice.events
                                         if e.sender == bot.user_id and "/ is almost full" in e.body]
    await bob.react(bot.room_id, alert.event_id, "✅")
    request = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == alert.event_id
                                   and e.body.startswith("🔐 Request #"), timeout=30)
    assert "@bob:localhost wants to run `!volume grow /mnt/data +10`" in request.body
    assert f"{size} GB → {size + 10} GB (+10 GB)" in request.body
    rid = int(re.match(r"🔐 Request #(\d+)", request.body).group(1))
    answer = await alice.command(bot.room_id, f"!approve {rid}", bot.user_id)
    assert answer.body == f"request #{rid} approved"
    await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == alert.event_id
                         and f"grew {size} → {size + 10} GB" in e.body, timeout=40)
    assert cloud.hetzner.volumes[100]["size"] == size + 10
    write_usage(cloud_usage(cloud), {"/": 40, "/mnt/data": 50})
    await alice.wait_for(lambda e: e.sender == bot.user_id and "resolved: /mnt/data is back to 50%" in e.body,
                         timeout=30)


def cloud_usage(cloud):
    return cloud.by_id.parent / "usage.json"
