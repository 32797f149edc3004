"""!server, !volume and !dns through the real path: admins' E2EE clients talk to a real bot process
whose server provider and [dns] point at the local fakes, and whose PATH starts with recording
findmnt, resize2fs and xfs_growfs. Every test runs against both server providers (the `cloud`
fixture's params): Hetzner through hcloud, DigitalOcean ([cloud] provider = "digitalocean")
through pydo, each against its local API server; tests/cloud_sides.py holds what differs."""
from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from spbot.features.server.offer import grow_offer_for
from spbot.providers.dns.records import DomainConfig, expected_records
from spbot.render import human_bytes
from tests.cloud_sides import SIDES, DigitalOceanSide, HetznerSide
from tests.fakebin import FakeBin, Rule
from tests.fakes.cloudflare_api import FakeCloudflare

from .conftest import wait_answering
from .test_approvals import request_for, result_reply

if TYPE_CHECKING:
    from .conftest import TestBot

pytestmark = pytest.mark.matrix

CF_TOKEN = "cf-chat-secret-abcdef"
DOMAIN = "example.org"
IPV4, IPV6, OLD_IP = "203.0.113.10", "2001:db8:1234::1", "198.51.100.7"
DKIM = "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"
GIB = 2**30
JOB_TIMEOUT = 30


@dataclass
class Cloud:
    bot: TestBot
    side: HetznerSide | DigitalOceanSide
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


@pytest.fixture(scope="module", params=sorted(SIDES, reverse=True))
async def cloud(make_bot, tmp_path_factory, request) -> Cloud:
    root = tmp_path_factory.mktemp(f"cloud-{request.param}")
    side, cloudflare = SIDES[request.param](), FakeCloudflare(token=CF_TOKEN)
    side.start()
    cloudflare.start()
    seed_drifted_zone(cloudflare)

    dev, by_id = root / "dev", root / "by-id"
    dev.mkdir()
    by_id.mkdir()
    for name in ("sda1", "sdb", "sdc"):
        (dev / name).touch()
    for link, disk in side.links().items():
        (by_id / link).symlink_to(dev / disk)
    (by_id / "scsi-0QEMU_QEMU_HARDDISK_drive-scsi0-part1").symlink_to(dev / "sda1")
    token, cf_token = root / f"{side.name}.token", root / "cloudflare.token"
    token.write_text(side.token + "\n")
    cf_token.write_text(CF_TOKEN + "\n")

    state = Cloud(None, side, cloudflare, FakeBin(root), dev, by_id, token)
    state.install_findmnt()
    usage_file = root / "usage.json"
    write_usage(usage_file, {"/": 40, "/mnt/data": 50})
    extra = f"""
{side.section(token, by_id)}
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
    state.bot = await make_bot(f"cloud-{side.name}", extra=extra, env=state.bins.env())
    yield state
    state.bot.stop()
    side.fake.stop()
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
    bot, side = cloud.bot, cloud.side
    reply = await alice.command(bot.room_id, "!server", bot.user_id, timeout=JOB_TIMEOUT)
    body = reply.body
    assert body.startswith(f"🖥 family-server: {side.running}")
    assert f"type: {side.expect['type']}" in body
    assert f"location: {side.expect['location']}" in body
    assert "IPv4: 203.0.113.10" in body and f"IPv6: {side.expect['ipv6']}" in body
    assert f"traffic: {side.expect['traffic']}" in body
    assert f"price: {side.expect['price']}" in body
    assert "volumes: 2 attached" in body and "bot: runs on another machine" in body
    assert f"<b>price</b>: {side.expect['price']}" in reply.content["formatted_body"]


async def test_server_metrics_as_sparklines(alice, cloud):
    bot = cloud.bot
    reply = await alice.command(bot.room_id, "!server metrics 1h", bot.user_id,
                                timeout=JOB_TIMEOUT)
    lines = reply.body.splitlines()
    assert lines[0] == "📈 family-server, last 1h (one point per 1 min)"
    if cloud.side.name == "hetzner":
        rows = {line.split(" — ")[0]: line for line in lines[1:]}
        assert set(rows) == {"CPU", "disk read IO/s", "disk write IO/s", "disk read",
                             "disk write", "network in packets/s", "network out packets/s",
                             "network in", "network out"}
        assert "min 0.0 %" in rows["CPU"] and "max 13.5 %" in rows["CPU"]
    else:  # DigitalOcean has no disk I/O metrics, and says so
        assert lines[-1] == ("DigitalOcean reports no disk I/O: the filesystem rows show how "
                             "full each one is; network is public and private bandwidth.")
        rows = {line.split(" — ")[0]: line for line in lines[1:-1]}
        assert set(rows) == {"CPU", "network public in", "network public out",
                             "network private in", "network private out", "filesystem / used",
                             "filesystem /mnt/data used", "filesystem /mnt/archive used"}
        assert "30.0 %" in rows["CPU"] and "50.0 %" in rows["filesystem / used"]
        assert re.search(r" · min [\d.]+ % · avg [\d.]+ % · max [\d.]+ %$", rows["CPU"]), rows["CPU"]
    assert "B/s" in rows["network in" if cloud.side.name == "hetzner" else "network public in"]
    assert any(bar in rows["CPU"] for bar in "▂▃▄▅▆▇█")
    assert "<li><b>CPU</b> — " in reply.content["formatted_body"]


async def test_token_rejected(alice, cloud):
    bot, side = cloud.bot, cloud.side
    side.fake.token = "a-token-that-was-revoked"
    try:
        reply = await alice.command(bot.room_id, "!server", bot.user_id, timeout=JOB_TIMEOUT)
    finally:
        side.fake.token = side.token
    assert reply.body.startswith(side.expect["token_rejected"])
    assert side.token not in reply.body


async def test_rate_limit_is_waited_out(alice, cloud):
    bot, fake = cloud.bot, cloud.side.fake
    fake.rate_limit(times=2)
    reply = await alice.command(bot.room_id, "!server", bot.user_id, timeout=JOB_TIMEOUT)
    assert reply.body.startswith(f"🖥 family-server: {cloud.side.running}")
    assert all(f.times == 0 for f in fake.faults)
    assert bot.log().count(cloud.side.expect["rate_limited"]) >= 2


async def test_snapshot_and_a_failed_action(alice, cloud):
    bot, side = cloud.bot, cloud.side
    command_id = await alice.send(bot.room_id, "!server snapshot before the upgrade")
    reply = await result_reply(alice, command_id, bot, "Snapshot #", JOB_TIMEOUT)
    assert side.expect["snapshot"] in reply.body
    assert f"delete old ones in {side.console}." in reply.body

    expected = side.fail_snapshot()
    command_id = await alice.send(bot.room_id, "!server snapshot")
    reply = await result_reply(alice, command_id, bot, "⚠️", JOB_TIMEOUT)
    if side.name == "hetzner":
        assert reply.body == expected
    else:  # DigitalOcean's action object carries no reason
        assert reply.body.startswith("⚠️ DigitalOcean action “snapshot” (") and expected in reply.body
        assert reply.body.endswith(f"Look at the droplet's history in {side.console}, then try again.")


async def test_reboot_with_approval(alice, bob, cloud):
    bot, side = cloud.bot, cloud.side
    command_id, message, rid = await request_for(alice, bot, "!server reboot")
    assert side.expect["reboot_preview"] in message.body
    assert "I run on this server" not in message.body
    assert side.reboot not in side.commands()
    await approve(bob, bot, rid)
    reply = await result_reply(alice, command_id, bot, "rebooted", JOB_TIMEOUT)
    assert reply.body.startswith(f"✅ family-server rebooted: {side.label}'s reboot action #")
    assert reply.body.endswith(f"succeeded; the server is {side.running}.")
    assert side.commands().count(side.reboot) == 1


async def test_reboot_of_own_host_is_reported_after_restart(alice, bob, cloud):
    bot, side = cloud.bot, cloud.side
    fake = side.fake
    side.set_ipv4("127.0.0.1")  # the bot now runs "on" it
    fake.action_polls = 10**6  # the reboot never finishes while the bot is up
    try:
        command_id, message, rid = await request_for(alice, bot, "!server reboot")
        assert "I run on this server: I go down with it and report here" in message.body
        reboots = side.commands().count(side.reboot)
        await approve(bob, bot, rid)
        await until(lambda: side.commands().count(side.reboot) == reboots + 1)
        action_id = max(fake.actions)
        await until(lambda: fake.count("GET", rf"{side.api}/actions/{action_id}") > 0)
        bot.stop()  # as the reboot would
        fake.action_polls = 2
        bot.start()
        await wait_answering(alice, bot)
        reply = await result_reply(alice, command_id, bot, "rebooted (job #", JOB_TIMEOUT)
    finally:
        side.set_ipv4(IPV4)
        fake.action_polls = 2
    assert f"{side.label}'s reboot action #{action_id}" in reply.body
    assert f"succeeded; the server is {side.running}." in reply.body
    assert "note above about the job ending is about that wait" in reply.body  # no real boot
    ended = await result_reply(alice, command_id, bot, "ended when the bot stopped, as expected: "
                               "the server was rebooting, and I run on it")
    assert ended.received < reply.received
    assert "was interrupted" not in " ".join(e.body for e in alice.replies_to(command_id, bot.user_id))
    assert side.commands().count(side.reboot) == reboots + 1


async def test_resize_of_own_host_is_refused(alice, bob, cloud):
    bot, side = cloud.bot, cloud.side
    side.set_ipv4("127.0.0.1")
    new_type = side.expect["new_type"]
    try:
        command_id, message, rid = await request_for(alice, bot, f"!server resize {new_type}")
        assert "⚠️ This will be refused: I run on family-server myself" in message.body
        await approve(bob, bot, rid)
        reply = await result_reply(alice, command_id, bot, f"Resize it in {side.console}",
                                   JOB_TIMEOUT)
    finally:
        side.set_ipv4(IPV4)
    assert "I would go down with it before I could change the type" in reply.body
    assert f"bot_runs_on_server = false in [{side.name}]" in reply.body
    assert side.shutdown not in side.commands()


async def test_resize_with_approval(alice, bob, cloud):
    bot, side = cloud.bot, cloud.side
    command_id, message, rid = await request_for(alice, bot,
                                                 f"!server resize {side.expect['new_type']}")
    assert side.expect["plan"] in message.body
    assert side.expect["plan_price"] in message.body
    assert f"The disk stays {side.expect['disk']} GB, so going back to a smaller type stays possible. The server is off for a few " \
        "minutes." in message.body
    assert side.shutdown not in side.commands()
    await approve(bob, bot, rid)
    reply = await result_reply(alice, command_id, bot, "is now", JOB_TIMEOUT)
    assert reply.body.splitlines()[0] == side.expect["resized"]
    assert f"Status: {side.running}. {side.label} actions: " in reply.body
    assert side.commands()[-len(side.expect["resize_actions"]):] == side.expect["resize_actions"]
    assert side.server_state() == (side.expect["new_type"], side.expect["disk"], side.running)


async def test_resize_growing_the_disk_says_it_cannot_be_undone(alice, bob, cloud):
    bot, side = cloud.bot, cloud.side
    new_type, disk = side.expect["grow_type"], side.expect["grown_disk"]
    command_id, message, rid = await request_for(
        alice, bot, f"!server resize {new_type} --grow-disk")
    assert (f"The disk grows to {disk} GB, which cannot be undone: a smaller type is no longer "
            "possible afterwards. The server is off while the disk grows") in message.body
    await approve(bob, bot, rid)
    reply = await result_reply(alice, command_id, bot, "is now", JOB_TIMEOUT)
    assert reply.body.splitlines()[0].endswith(f"{disk} GB disk.")
    assert side.server_state() == (new_type, disk, side.running)


async def resize_held_at(alice, bob, cloud: Cloud, held: str) -> tuple[str, int]:
    """`!server resize` approved and under way, held at the provider's `held` action (it stays running
    until released): (the command's event id, how many type changes were asked for before)."""
    bot, side = cloud.bot, cloud.side
    side.set_server_type(side.expect["first_type"])
    command_id, _, rid = await request_for(alice, bot, f"!server resize {side.expect['new_type']}")
    changes, before = side.commands().count(side.change_type), side.commands().count(held)
    side.fake.held.add(held)
    await approve(bob, bot, rid)
    await until(lambda: side.commands().count(held) == before + 1, JOB_TIMEOUT)
    return command_id, changes


async def resize_killed_at(alice, bob, cloud: Cloud, held: str) -> tuple[str, int]:
    """The bot killed while a resize waits for the provider's `held` action, which then ends while the
    bot is down: as resize_held_at."""
    try:
        command_id, changes = await resize_held_at(alice, bob, cloud, held)
        cloud.bot.kill()
    finally:
        cloud.side.fake.held.clear()
    return command_id, changes


async def test_a_resize_cut_short_by_a_stop_is_finished_at_the_next_start(alice, bob, cloud):
    """The bot was killed while the provider changed the type, with the server off for it: after the
    restart the change is waited for, the server powered on again if it is still off (DigitalOcean does
    not start it by itself), and the command answered; nothing is asked of the provider twice."""
    bot, side = cloud.bot, cloud.side
    command_id, changes = await resize_killed_at(alice, bob, cloud, side.change_type)
    power_ons = side.commands().count(side.power_on)
    assert side.server_state()[2] != side.running

    bot.start()
    done = await result_reply(alice, command_id, bot, "✅ I was stopped while resizing", JOB_TIMEOUT * 3)
    first, new = side.expect["first_type"], side.expect["new_type"]
    assert re.match(rf"✅ I was stopped while resizing family-server from {first} to {new} \(job #\d+\): "
                    rf"it is now a {new}\.\n", done.body), done.body
    if side.name == "digitalocean":
        assert done.body.endswith(f"It was off, so I powered it on again: it is {side.running}."), done.body
        assert side.commands().count(side.power_on) == power_ons + 1
    else:  # Hetzner starts the server itself when the type change ends
        assert done.body.endswith(f"The server is {side.running}."), done.body
        assert side.commands().count(side.power_on) == power_ons
    assert side.server_state() == (new, side.expect["disk"], side.running)
    assert side.commands().count(side.change_type) == changes + 1
    await wait_answering(alice, bot)


async def test_a_resize_stopped_while_shutting_down_powers_the_server_on_again(alice, bob, cloud):
    bot, side = cloud.bot, cloud.side
    command_id, changes = await resize_killed_at(alice, bob, cloud, side.shutdown)
    bot.start()
    done = await result_reply(alice, command_id, bot, "ℹ️ I was stopped while resizing", JOB_TIMEOUT * 3)
    first = side.expect["first_type"]
    assert done.body.split("\n")[1:] == [
        f"It was off, so I powered it on again: it is {side.running}.",
        "Send the command again if you still want the new type."], done.body
    assert f"it is still a {first}; the type was not changed." in done.body
    assert side.server_state() == (first, side.expect["disk"], side.running)
    assert side.commands().count(side.change_type) == changes
    await wait_answering(alice, bot)


async def test_a_cancelled_resize_is_finished_and_the_server_powered_on(alice, bob, cloud):
    """Until the server is back, the cancelled job keeps the server's locks: another cloud command
    waits for it instead of acting on a server that is still changing."""
    bot, side = cloud.bot, cloud.side
    try:
        command_id, changes = await resize_held_at(alice, bob, cloud, side.change_type)
        progress = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                                        and "— job #" in e.body, timeout=20)
        job_id = int(re.search(r"job #(\d+)", progress.body).group(1))
        answer = await bob.command(bot.room_id, f"!cancel {job_id}", bot.user_id)
        assert answer.body.startswith(f"cancelling job #{job_id}")
        snapshots = side.commands().count(side.snapshot)
        snapshot_id = await alice.send(bot.room_id, "!server snapshot after the cancel")
        await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == snapshot_id
                             and f"waiting for job #{job_id} (!server resize" in e.body, timeout=20)
        await asyncio.sleep(1)
        assert side.commands().count(side.snapshot) == snapshots
    finally:
        side.fake.held.clear()
    done = await result_reply(alice, command_id, bot, "✅ The resize was cancelled while resizing", JOB_TIMEOUT)
    assert side.server_state() == (side.expect["new_type"], side.expect["disk"], side.running)
    assert done.body.endswith(f"it is {side.running}." if side.name == "digitalocean"
                              else f"The server is {side.running}."), done.body
    await result_reply(alice, snapshot_id, bot, "📸", JOB_TIMEOUT)
    assert side.commands().count(side.snapshot) == snapshots + 1


# -- !volume -------------------------------------------------------------------------------


async def test_volume_list(alice, cloud):
    bot, side = cloud.bot, cloud.side
    reply = await alice.command(bot.room_id, "!volume list", bot.user_id, timeout=JOB_TIMEOUT)
    assert reply.body.splitlines()[0] == f"💾 {side.label} volumes"
    lines = reply.body.splitlines()[1:]                # each volume's line, then where it is mounted
    rows = {line.split()[0]: line + "\n" + mount for line, mount in zip(lines[::2], lines[1::2])}
    assert f"(#{side.volume_id('data')})" in rows["data"]
    assert "50 GB" in rows["data"] and "family-server" in rows["data"]
    assert "/mnt/data" in rows["data"] and "ext4, 40.0 GiB of 49.0 GiB used (82%)" in rows["data"]
    assert "/mnt/archive" in rows["archive"] and "xfs" in rows["archive"]
    assert [c.argv for c in cloud.bins.calls("findmnt")][-1] == [
        "--json", "--bytes", "--list", "--output", "TARGET,SOURCE,FSTYPE,SIZE,USED,AVAIL"]


async def test_volume_grow_ext4(alice, bob, cloud):
    bot, side = cloud.bot, cloud.side
    device = str(cloud.dev / "sdb")
    before = cloud.fs_size("/mnt/data")
    cloud.expect_growth("resize2fs", ["--", device], "/mnt/data", 60)
    command_id, message, rid = await request_for(alice, bot, "!volume grow /mnt/data +10")
    assert (f"Volume “data” (#{side.volume_id('data')}) at /mnt/data: 50 GB → 60 GB (+10 GB), "
            f"{side.expect['ten_gb']}.") in message.body
    assert "Then resize2fs grows the ext4 filesystem while it stays mounted." in message.body
    assert side.volume_size("data") == 50
    await approve(bob, bot, rid)
    reply = await result_reply(alice, command_id, bot, "grew", JOB_TIMEOUT)
    assert reply.body.startswith(
        f"✅ /mnt/data: volume “data” grew 50 → 60 GB, {side.expect['ten_gb']}.")
    assert (f"The ext4 filesystem, as the system sees it: {human_bytes(before)} → "
            f"{human_bytes(cloud.fs_size('/mnt/data'))}.") in reply.body
    assert side.volume_size("data") == 60
    assert [c.argv for c in cloud.bins.calls("resize2fs")] == [["--", device]]


async def test_volume_grow_xfs_to_a_total(alice, bob, cloud):
    bot, side = cloud.bot, cloud.side
    cloud.expect_growth("xfs_growfs", ["--", "/mnt/archive"], "/mnt/archive", 30)
    command_id, message, rid = await request_for(alice, bot, "!volume grow /mnt/archive 30")
    assert (f"“archive” (#{side.volume_id('archive')}) at /mnt/archive: 20 GB → 30 GB (+10 GB)"
            in message.body)
    await approve(bob, bot, rid)
    reply = await result_reply(alice, command_id, bot, "grew", JOB_TIMEOUT)
    assert "volume “archive” grew 20 → 30 GB" in reply.body
    assert "The xfs filesystem, as the system sees it: 19.6 GiB → 29.4 GiB." in reply.body
    assert side.volume_size("archive") == 30
    assert [c.argv for c in cloud.bins.calls("xfs_growfs")] == [["--", "/mnt/archive"]]


async def test_volume_grown_but_filesystem_step_failed(alice, bob, cloud):
    bot, side = cloud.bot, cloud.side
    device = str(cloud.dev / "sdb")
    cloud.bins.add("resize2fs", [Rule(match=["--", device], exit=1, stderr=(
        "resize2fs 1.47.0 (5-Feb-2023)\n"
        "resize2fs: Permission denied to resize filesystem\n"))])
    command_id, _, rid = await request_for(alice, bot, "!volume grow /mnt/data 65")
    await approve(bob, bot, rid)
    reply = await result_reply(alice, command_id, bot, "failed", JOB_TIMEOUT)
    assert reply.body.splitlines() == [
        f"⚠️ Volume “data” is now 65 GB at {side.label} (billed from now), but resize2fs "
        "failed: resize2fs 1.47.0 (5-Feb-2023)",
        "resize2fs: Permission denied to resize filesystem",
        f"Grow the filesystem on the server by hand: resize2fs -- {device}"]
    assert side.volume_size("data") == 65


async def test_a_growth_asked_twice_and_approved_twice_grows_once(alice, bob, cloud):
    """Two admins ask for the same growth (or one asks twice); both requests show 30 → 35 GB and both are
    approved: the volume grows once, the second says so and adds nothing (nor bills it)."""
    bot, side = cloud.bot, cloud.side
    grown_before = len(cloud.bins.calls("xfs_growfs"))
    cloud.expect_growth("xfs_growfs", ["--", "/mnt/archive"], "/mnt/archive", 35)
    first_id, first, first_rid = await request_for(alice, bot, "!volume grow /mnt/archive +5")
    second_id, second, second_rid = await request_for(bob, bot, "!volume grow /mnt/archive +5")
    assert "30 GB → 35 GB (+5 GB)" in first.body and "30 GB → 35 GB (+5 GB)" in second.body
    await approve(bob, bot, first_rid)
    assert "volume “archive” grew 30 → 35 GB" in (await result_reply(alice, first_id, bot, "grew", JOB_TIMEOUT)).body
    answer = await alice.command(bot.room_id, f"!approve {second_rid}", bot.user_id)
    assert answer.body == f"request #{second_rid} approved"
    twin = await result_reply(bob, second_id, bot, "already", JOB_TIMEOUT)
    assert twin.body.startswith("✅ /mnt/archive: volume “archive” is 35 GB already, as this request asked: "
                                "another request grew it, so nothing more was added or billed."), twin.body
    assert side.volume_size("archive") == 35
    assert len(cloud.bins.calls("xfs_growfs")) == grown_before + 2     # the second only fills what is there


async def test_a_growth_approved_after_the_volume_changed_is_refused(alice, bob, cloud):
    bot, side = cloud.bot, cloud.side
    stale_id, stale, stale_rid = await request_for(alice, bot, "!volume grow /mnt/archive +5")
    assert "35 GB → 40 GB (+5 GB)" in stale.body
    cloud.expect_growth("xfs_growfs", ["--", "/mnt/archive"], "/mnt/archive", 45)
    other_id, _, other_rid = await request_for(alice, bot, "!volume grow /mnt/archive 45")
    await approve(bob, bot, other_rid)
    await result_reply(alice, other_id, bot, "grew", JOB_TIMEOUT)
    await approve(bob, bot, stale_rid)
    refused = await result_reply(alice, stale_id, bot, "nothing was changed", JOB_TIMEOUT)
    assert ("The volume at /mnt/archive is 45 GB now, not 35 GB as the request showed; nothing was changed."
            in refused.body), refused.body
    assert side.volume_size("archive") == 45


async def test_a_growth_cut_short_by_a_stop_is_finished_at_the_next_start(alice, bob, cloud):
    """The provider grew the volume (billed from then on), then the bot was killed while the filesystem
    grew: after the restart the filesystem is grown and the command answered, with nothing grown twice."""
    bot, side = cloud.bot, cloud.side
    calls = len(cloud.bins.calls("xfs_growfs"))
    cloud.bins.add("xfs_growfs", [Rule(match=["--", "/mnt/archive"], sleep=120)])
    command_id, _, rid = await request_for(alice, bot, "!volume grow /mnt/archive 50")
    await approve(bob, bot, rid)
    await until(lambda: len(cloud.bins.calls("xfs_growfs")) > calls, JOB_TIMEOUT)
    bot.kill()
    cloud.expect_growth("xfs_growfs", ["--", "/mnt/archive"], "/mnt/archive", 50)

    bot.start()
    done = await result_reply(alice, command_id, bot, "I was stopped while growing", JOB_TIMEOUT * 3)
    assert re.match(r"✅ I was stopped while growing volume “archive” at /mnt/archive \(job #\d+\), after "
                    + re.escape(side.label) + r" grew it to 50 GB: I grew the xfs filesystem now \(xfs_growfs\): "
                    r"44\.1 GiB → 49\.0 GiB\.$", done.body), done.body
    assert side.volume_size("archive") == 50 and len(cloud.bins.calls("xfs_growfs")) == calls + 2
    await wait_answering(alice, bot)


async def test_grow_offer_for_disk_alerts(cloud):
    side = cloud.side
    settings = side.settings(cloud.token_file, cloud.by_id)
    client = side.connect(settings)
    env = cloud.bins.env()
    size = side.volume_size("data")
    offer = await grow_offer_for(settings, client, "/mnt/data", env)
    assert offer.command == "!volume grow /mnt/data +10"
    assert offer.text == (
        f"/mnt/data is {side.label} volume “data” ({size} GB). React ✅ to grow it by 10 GB to "
        f"{size + 10} GB for {side.expect['ten_gb']} (another admin approves), or send "
        "!volume grow /mnt/data +10.")
    assert offer.alert_line == (
        f"It is {side.label} volume “data” ({size} GB): growing it to {size + 10} GB costs "
        f"{side.expect['ten_gb']}.")
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
    rows = {line.split(" — ")[0]: line for line in lines[1:-1]}              # one line per record
    assert rows["git A"] == f"git A — ❌ missing · expected {IPV4} · found –"
    assert rows["cloud A"] == f"cloud A — ⚠️ different · expected {IPV4} · found {OLD_IP}"
    assert re.match(r"cloud AAAA — ✅ ok · \S+$", rows["cloud AAAA"]), rows["cloud AAAA"]
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
    await alice.wait_for(lambda e: e.sender == bot.user_id and
                         "✅ resolved: DNS of example.org matches the configuration again" in e.body, JOB_TIMEOUT)
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
    assert cloud.side.token not in log and CF_TOKEN not in log


# -- disk alert → grow offer ----------------------------------------------------------------


async def test_a_full_volume_alert_offers_to_grow_it_and_a_checkmark_starts_the_approval(
        alice, bob, cloud):
    bot, side = cloud.bot, cloud.side
    size = side.volume_size("data")
    device = str(cloud.dev / "sdb")
    cloud.expect_growth("resize2fs", ["--", device], "/mnt/data", size + 10)
    write_usage(cloud_usage(cloud), {"/": 40, "/mnt/data": 97})
    alert = await alice.wait_for(lambda e: e.sender == bot.user_id and "/mnt/data is almost full" in e.body,
                                 timeout=30)
    assert (f"It is {side.label} volume “data” ({size} GB): growing it to {size + 10} GB costs "
            f"{side.expect['ten_gb']}.") in alert.body
    assert "react ✅ to this message to run !volume grow /mnt/data +10" in alert.body
    assert "@bob:localhost" in alert.content["m.mentions"]["user_ids"]
    assert f"It is {side.label} volume" not in [e.body for e in alice.events
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
    assert side.volume_size("data") == size + 10
    write_usage(cloud_usage(cloud), {"/": 40, "/mnt/data": 50})
    await alice.wait_for(lambda e: e.sender == bot.user_id and "resolved: /mnt/data is back to 50%" in e.body,
                         timeout=30)


def cloud_usage(cloud):
    return cloud.by_id.parent / "usage.json"
