"""!disk and the disk alerts through the real path: E2EE commands to real bot processes on the real Synapse.

`!disk` reads this machine's real filesystems with psutil. The alert tests feed usage at the adapter
boundary instead: their bot reads `[disk] usage_source`, a JSON file the test rewrites (the machine
offers no loop devices to fill up). Everything after that is real: the APScheduler sampler every
second, SQLite history and alert state, the outbox, Matrix messages with mentions, process restarts
and a homeserver outage.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

from spbot.system.disks import DiskParams, disk_usage
from spbot.system.forecast import BARS

from .conftest import wait_answering

if TYPE_CHECKING:
    from spbot.chatclient import ChatClient, Seen
    from .conftest import TestBot

pytestmark = pytest.mark.matrix

GiB = 1024 ** 3
ADMINS = {"@alice:localhost", "@bob:localhost", "@erin:localhost"}
TIMEOUT = 30


# --------------------------------------------------------------------------- !disk on real psutil

@pytest.fixture(scope="module")
async def disk_bot(make_bot) -> "TestBot":
    return await make_bot("disk", extra="""
[disk]
sample_interval = "1s"
include_mounts = ["/dev/shm"]
du_time_budget = "10s"
""")


def table_lines(body: str) -> dict[str, str]:
    """The list's lines by mount (one line per filesystem: "/srv — ███░░░░░ 40% · …")."""
    return {line.split(" — ")[0].removesuffix(" (ro)"): line for line in body.splitlines()[1:]
            if line.startswith("/") and " — " in line}


async def test_disk_lists_the_real_filesystems(alice, disk_bot):
    reply = await alice.command(disk_bot.room_id, "!disk", disk_bot.user_id, timeout=TIMEOUT)
    expected = await disk_usage(DiskParams(include_mounts=["/dev/shm"]))
    rows = table_lines(reply.body)
    assert set(rows) == {u.mountpoint for u in expected}, reply.body
    assert "/" in rows and "/dev/shm" in rows                  # a config list adds a tmpfs
    assert not {"/proc", "/sys", "/dev/pts", "/sys/fs/cgroup"} & set(rows)

    root = psutil.disk_usage("/")
    match = re.search(r"(\d+)%", rows["/"])
    assert abs(int(match.group(1)) - root.percent) <= 1
    for mount, line in rows.items():                 # one short line each: bar, percent, free space, trend
        assert re.match(re.escape(mount) + r"( \(ro\))? — ([█░]{8} \d+%|⚠️ no answer) · ", line), line
    assert re.search(r" · [\d.]+ \w?i?B free of [\d.]+ \w?i?B · ", rows["/"])
    assert reply.type == "m.room.message" and reply.content["msgtype"] == "m.notice"
    html = reply.content["formatted_body"]
    assert "<ul>" in html and "<li><b>/</b> — " in html and "<table>" not in html


async def test_disk_shows_the_recorded_trend(alice, disk_bot):
    await asyncio.sleep(3)                                      # the sampler records every second
    reply = await alice.command(disk_bot.room_id, "!disk", disk_bot.user_id, timeout=TIMEOUT)
    row = table_lines(reply.body)["/"]
    assert any(c in row for c in BARS) and "collecting data" in row
    db = sqlite3.connect(disk_bot.state_dir / "spbot.db")
    try:
        count = db.execute("SELECT count(*) FROM disk_samples WHERE mount = '/'").fetchone()[0]
    finally:
        db.close()
    assert count >= 3


def write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))


async def test_disk_path_lists_the_biggest_directories(alice, disk_bot, tmp_path):
    MiB = 1024 ** 2
    write(tmp_path / "photos/2024/a.jpg", 3 * MiB)
    write(tmp_path / "photos/2025/b.jpg", 1 * MiB)
    write(tmp_path / "mail/inbox", 2 * MiB)
    reply = await alice.command(disk_bot.room_id, f"!disk {tmp_path}", disk_bot.user_id, timeout=TIMEOUT)
    body = reply.body
    assert body.startswith(f"{tmp_path} (on the filesystem mounted at /)"), body
    assert f"Biggest directories under {tmp_path} (depth 2;" in body
    device = next(p.device for p in psutil.disk_partitions(all=True) if p.mountpoint == "/")
    assert f"   on {device}" in body                     # the mount's line, then its device
    listing = body.split(f"Biggest directories under {tmp_path}", 1)[1].splitlines()[1:]
    order = [line.split(" — ")[0] for line in listing if " — " in line]
    assert order == ["photos", "photos/2024", "mail", "photos/2025"]      # below the path asked for
    sizes = {line.split(" — ")[0]: line.split(" — ")[1].split(" · ")[0] for line in listing if " — " in line}
    assert sizes["photos"] == "4.0 MiB" and sizes["mail"] == "2.0 MiB"
    assert "<li><b>photos</b> — 4.0 MiB · " in reply.content["formatted_body"]


async def test_disk_path_errors_are_clear(alice, disk_bot):
    reply = await alice.command(disk_bot.room_id, "!disk srv", disk_bot.user_id, timeout=TIMEOUT)
    assert reply.body == "⚠️ srv is not an absolute path\ngive a path from the root, e.g. !disk /srv"
    missing = f"/no-such-dir-{uuid.uuid4().hex[:6]}"
    reply = await alice.command(disk_bot.room_id, f"!disk {missing}", disk_bot.user_id, timeout=TIMEOUT)
    assert reply.body == f"⚠️ {missing} is not a directory on the server\nsend !disk to see the mounts"


# --------------------------------------------------------------------------- alerts

class Usage:
    """The usage file the alert bot reads: one entry per mount, rewritten atomically."""

    def __init__(self, path: Path):
        self.path = path
        self.mounts: dict[str, dict] = {}

    def set(self, mount: str, percent: float, total: int = 100 * GiB) -> None:
        used = int(total * percent / 100)
        self.mounts[mount] = {"mountpoint": mount, "device": f"/dev/disk-{mount.strip('/')}",
                              "fstype": "ext4", "total": total, "used": used, "free": total - used}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"mounts": list(self.mounts.values())}))
        os.replace(temporary, self.path)


@pytest.fixture(scope="module")
async def usage(tmp_path_factory) -> Usage:
    file = Usage(tmp_path_factory.mktemp("usage") / "usage.json")
    for mount in ("/data", "/mail", "/srv"):          # /photos comes with its history, later
        file.set(mount, 50)
    return file


@pytest.fixture(scope="module")
async def alert_bot(make_bot, usage) -> "TestBot":
    return await make_bot("diskalerts", extra=f"""
[disk]
usage_source = "{usage.path}"
sample_interval = "1s"
renotify = "1h"
""")


def about(bot: "TestBot", needle: str):
    return lambda e: e.sender == bot.user_id and e.type == "m.room.message" and needle in e.body


def seen(client: "ChatClient", bot: "TestBot", needle: str) -> list["Seen"]:
    return [e for e in client.events if about(bot, needle)(e)]


async def test_crossing_warn_posts_one_alert_with_mentions(alice, alert_bot, usage):
    usage.set("/data", 87)
    alert = await alice.wait_for(about(alert_bot, "/data is filling up"), TIMEOUT)
    assert alert.content["msgtype"] == "m.text"             # it needs a person: it rings (issue 15)
    assert set(alert.content["m.mentions"]["user_ids"]) == ADMINS
    assert "⚠️ /data is filling up: 87% used, 13.0 GiB free of 100.0 GiB" in alert.body
    assert "What to do: see what takes the space with !disk /data, then free some with !cleanup" in alert.body
    html = alert.content["formatted_body"]
    assert all(f'<a href="https://matrix.to/#/{admin}">' in html for admin in ADMINS)
    await asyncio.sleep(4)                                       # four more samples, still 87 %
    usage.set("/data", 88)
    await asyncio.sleep(2)
    assert len(seen(alice, alert_bot, "/data is")) == 1


async def test_worse_escalates_then_hysteresis_holds_then_recovery(alice, alert_bot, usage):
    usage.set("/data", 96)
    critical = await alice.wait_for(about(alert_bot, "🚨 /data is almost full: 96% used"), TIMEOUT)
    assert set(critical.content["m.mentions"]["user_ids"]) == ADMINS
    before = len(seen(alice, alert_bot, "/data is"))
    usage.set("/data", 91)                  # below 95 but not below 90: still critical
    await asyncio.sleep(3)
    usage.set("/data", 82)                  # below 85 but not below 80: still an alert
    await asyncio.sleep(3)
    assert len(seen(alice, alert_bot, "/data is")) == before
    usage.set("/data", 79)
    recovery = await alice.wait_for(about(alert_bot, "resolved: /data"), TIMEOUT)
    assert recovery.body.endswith(": ✅ resolved: /data is back to 79% full (21.0 GiB free of 100.0 GiB)")
    # the alert rang, so its recovery rings the same admins (issue 15)
    assert recovery.content["msgtype"] == "m.text" and set(recovery.content["m.mentions"]["user_ids"]) == ADMINS
    await asyncio.sleep(2)
    assert len(seen(alice, alert_bot, "/data is")) == before + 1


def seed_history(db_path: Path, mount: str, hours: int, start_used: float, per_hour: float,
                 now: float, total: int = 100 * GiB) -> None:
    db = sqlite3.connect(db_path)
    try:
        db.executemany("INSERT INTO disk_samples(mount, ts, used, total) VALUES(?,?,?,?)",
                       [(mount, now - (hours - h) * 3600, int(start_used + h * per_hour), total)
                        for h in range(hours)])
        db.commit()
    finally:
        db.close()


async def test_restart_neither_repeats_nor_forgets(alice, alert_bot, usage):
    usage.set("/mail", 90)
    await alice.wait_for(about(alert_bot, "/mail is filling up"), TIMEOUT)
    alert_bot.stop()
    # two days of recorded growth on /photos, 1 GiB an hour, as the sampler would have stored it
    seed_history(alert_bot.state_dir / "spbot.db", "/photos", 48, 22 * GiB, GiB, time.time())
    usage.set("/photos", 70)
    alert_bot.start()
    await wait_answering(alice, alert_bot)
    forecast = await alice.wait_for(about(alert_bot, "/photos will be full in"), TIMEOUT)
    assert re.search(r"/photos will be full in ~1 day at the current rate \(\+24\.0 GiB/day, 70% used now\)",
                     forecast.body), forecast.body
    await asyncio.sleep(3)
    assert len(seen(alice, alert_bot, "/mail is")) == 1           # not repeated after the restart
    assert len(seen(alice, alert_bot, "/photos will be full")) == 1

    reply = await alice.command(alert_bot.room_id, "!disk", alert_bot.user_id, timeout=TIMEOUT)
    row = table_lines(reply.body)["/photos"]
    assert "full in ~1 day" in row and sum(c in BARS for c in row) >= 4, reply.body
    assert "⚠️ /mail is filling up: !disk /mail, then !cleanup" in reply.body

    usage.set("/mail", 60)
    await alice.wait_for(about(alert_bot, "resolved: /mail is back to 60% full"), TIMEOUT)


async def test_alert_during_homeserver_outage_arrives_afterwards(synapse, alice, alert_bot, usage):
    synapse.stop()
    try:
        usage.set("/srv", 97)
        for _ in range(100):
            if "disk:/srv:usage" in alert_bot.log():
                break
            await asyncio.sleep(0.1)
        assert "disk:/srv:usage" in alert_bot.log(), "the alert was not raised while the server was down"
    finally:
        synapse.start()
    alert = await alice.wait_for(about(alert_bot, "🚨 /srv is almost full: 97% used"), 90)
    assert set(alert.content["m.mentions"]["user_ids"]) == ADMINS


async def test_renotify_after_the_configured_interval_across_a_restart(alice, alert_bot, usage):
    """Last in the module: it leaves the bot re-notifying every 2 s."""
    before = len(seen(alice, alert_bot, "still: /srv"))
    alert_bot.stop()
    config = alert_bot.config_path.read_text()
    alert_bot.config_path.write_text(config.replace('renotify = "1h"', 'renotify = "2s"'))
    alert_bot.start()
    await wait_answering(alice, alert_bot)
    reminder = await alice.wait_for(about(alert_bot, "🚨 still: /srv is almost full"), TIMEOUT)
    assert set(reminder.content["m.mentions"]["user_ids"]) == ADMINS
    assert len(seen(alice, alert_bot, "still: /srv")) >= before + 1


# --------------------------------------------------------------------------- rendering details

def test_list_shows_inodes_only_when_high_and_mounts_that_do_not_answer():
    from spbot.features.disk import DiskSettings
    from spbot.features.disk.render import usage_list
    from spbot.system.disks import MountUsage

    ok = MountUsage(mountpoint="/", device="/dev/sda1", total=100 * GiB, used=40 * GiB, free=60 * GiB,
                    percent=40.0, inodes_percent=12.0)
    many_files = MountUsage(mountpoint="/srv", device="/dev/sdb1", total=100 * GiB, used=10 * GiB,
                            free=90 * GiB, percent=10.0, inodes_percent=91.0)
    hung = MountUsage(mountpoint="/mnt/nfs", device="nas:/export", available=False,
                      error="did not answer within 5s")
    settings = DiskSettings()
    plain = usage_list([ok, hung], {}, settings, 0.0, "t").body
    assert "inodes" not in plain
    assert "/mnt/nfs — ⚠️ no answer · did not answer within 5s" in plain.splitlines()
    with_inodes = usage_list([ok, many_files], {}, settings, 0.0, "t").body.splitlines()
    assert with_inodes[2].endswith(" · inodes 91%") and "inodes" not in with_inodes[1]
