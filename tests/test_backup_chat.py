"""!backup through the real chat path: E2EE commands to real bot processes backing up with the real
restic into local repositories (one bot also points at an S3 port where nothing listens).
systemctl is a recording fakebin; nothing on this machine is stopped, started or replaced outside the
test's temporary directories."""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from spbot.system.restic import LocalRepository, Restic
from tests.fakebin import FakeBin, Rule
from tests.test_approvals import request_for, result_reply
from tests.test_restic_adapter import assert_same_tree, cheapen_key, make_tree

if TYPE_CHECKING:
    from .conftest import TestBot

pytestmark = [pytest.mark.matrix,
              pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed")]

PASSWORD = "chat backups password 81d0"
ADMINS = {"@alice:localhost", "@bob:localhost", "@erin:localhost"}


@dataclass
class World:
    """A bot with its own repository, live data and recording systemctl."""
    bot: "TestBot"
    root: Path
    repo: Path
    password_file: Path
    bins: FakeBin
    snapshots: dict[str, str] = field(default_factory=dict)   # service -> short id of a manual snapshot

    def live(self, service: str) -> Path:
        return self.root / "live" / service

    def restic(self) -> Restic:
        return Restic(LocalRepository(path=self.repo), PASSWORD, cache_dir=self.root / "test-cache")


async def new_repository(root: Path) -> tuple[Path, Path]:
    repo = root / "repo"
    await Restic(LocalRepository(path=repo), PASSWORD, cache_dir=root / "test-cache").init()
    cheapen_key(repo, PASSWORD)   # restic otherwise spends ~0.5 s on key derivation per command
    password_file = root / "restic-password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    return repo, password_file


def backup_config(repo_table: str, password_file: Path, bins: FakeBin, services: str, **keys: str) -> str:
    # write_limit off: these tests back up 160 MiB many times (the limit has its own test in
    # tests/test_restic_adapter.py, and the other backup chat tests run with the default).
    settings = {"schedule": '"off"', "retention_schedule": '"off"', "drill_schedule": '"off"',
                "digest_schedule": '"off"', "max_age": '"30d"', "drill_files": "100", "host": '"testhost"',
                "write_limit": '"off"', **keys}
    lines = "\n".join(f"{k} = {v}" for k, v in settings.items())
    return f"""
[backup]
password = {{file = "{password_file}"}}
systemctl = "{bins.dir}/systemctl"
{lines}
[backup.repository]
{repo_table}
{services}
"""


@pytest.fixture(scope="module")
async def world(make_bot, tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("backup-chat")
    make_tree(root / "live" / "files")
    (root / "live" / "big").mkdir(parents=True)
    for i in range(4):   # big enough for restic to report progress a few times
        (root / "live" / "big" / f"part-{i}.bin").write_bytes(os.urandom(40 << 20))
    (root / "live" / "slow").mkdir()
    (root / "live" / "slow" / "note").write_text("slow service\n")
    repo, password_file = await new_repository(root)
    bins = FakeBin(root)
    bins.add("systemctl", [Rule(match=["**"])])
    services = f"""
[backup.retention]
keep_last = 1
keep_daily = 2
[backup.services.files]
paths = ["{root}/live/files"]
units = ["web-app"]
[backup.services.big]
paths = ["{root}/live/big"]
[backup.services.slow]
paths = ["{root}/live/slow"]
pre = [["sleep", "4"]]
"""
    extra = backup_config(f'kind = "local"\npath = "{repo}"', password_file, bins, services)
    bot = await make_bot("backup", extra=extra, env=bins.env())
    return World(bot, root, repo, password_file, bins)


def from_bot(bot: "TestBot", needle: str, reply_to: str | None = None):
    return lambda e: (e.sender == bot.user_id and needle in e.body
                      and (reply_to is None or e.reply_to == reply_to))


def edit_of(bot: "TestBot", message_id: str, predicate):
    return lambda e: (e.sender == bot.user_id and e.relates.get("rel_type") == "m.replace"
                      and e.relates.get("event_id") == message_id
                      and predicate(e.content["m.new_content"]["body"]))


async def restic_snapshots_json(world: World) -> list[dict]:
    """What the repository holds, asked of the restic command line directly."""
    env = {"PATH": os.environ["PATH"], "HOME": str(world.root), "RESTIC_REPOSITORY": str(world.repo),
           "RESTIC_PASSWORD_FILE": str(world.password_file), "RESTIC_CACHE_DIR": str(world.root / "test-cache")}
    result = await asyncio.to_thread(subprocess.run, ["restic", "snapshots", "--json"], env=env,
                                     capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout)


def snapshot_id(body: str, service: str) -> str:
    return re.search(rf"✅ {service}: snapshot ([0-9a-f]{{8}})", body).group(1)


# --------------------------------------------------------------------------- backup now


async def test_backup_now_edits_one_progress_message_and_replies_per_service(alice, world):
    bot = world.bot
    command_id = await alice.send(bot.room_id, "!backup now big files")
    progress = await alice.wait_for(from_bot(bot, "⏳ !backup now — job #", command_id), timeout=20)

    live_edit = await alice.wait_for(edit_of(bot, progress.event_id, lambda body: "%" in body and
                                             "big (1/2)" in body and " files" in body and "MiB" in body),
                                     timeout=60)
    big = await alice.wait_for(from_bot(bot, "✅ big: snapshot", command_id), timeout=60)
    files = await alice.wait_for(from_bot(bot, "✅ files: snapshot", command_id), timeout=30)
    await alice.wait_for(from_bot(bot, "✅ backup done: big, files", command_id), timeout=30)
    await alice.wait_for(edit_of(bot, progress.event_id, lambda body: "done after" in body), timeout=20)

    assert re.search(r"█*░* \d+%", live_edit.content["m.new_content"]["body"])
    assert "160.0 MiB in the snapshot" in big.body and "5 new, 0 changed files" in files.body
    world.snapshots = {"big": snapshot_id(big.body, "big"), "files": snapshot_id(files.body, "files")}
    in_repo = {s["short_id"]: sorted(s["tags"]) for s in await restic_snapshots_json(world)}
    assert in_repo[world.snapshots["big"]] == ["reason:manual", "service:big"]
    assert in_repo[world.snapshots["files"]] == ["reason:manual", "service:files"]


async def test_second_backup_now_is_refused_while_one_runs(alice, world):
    bot = world.bot
    first_id = await alice.send(bot.room_id, "!backup now slow")
    await alice.wait_for(from_bot(bot, "slow: pre command 1 (sleep)"), timeout=20)

    refused = await alice.command(bot.room_id, "!backup now files", bot.user_id, timeout=20)

    assert "already under way as job #" in refused.body and "!cancel" in refused.body
    await alice.wait_for(from_bot(bot, "✅ slow: snapshot", first_id), timeout=30)


async def test_list_and_stats(alice, world):
    bot = world.bot
    listing = await alice.command(bot.room_id, "!backup list", bot.user_id, timeout=30)
    assert "big: 1 snapshot(s)" in listing.body and "files: 1 snapshot(s)" in listing.body
    assert world.snapshots["files"] in listing.body and "manual" in listing.body and "160.0 MiB" in listing.body
    assert re.search(r"^" + world.snapshots["files"] + r" — \d{4}-\d\d-\d\d \d\d:\d\d · manual · [\d.]+ \w?i?B$",
                     listing.body, re.M), listing.body          # one snapshot per line: time, reason, size
    assert f"<li><b>{world.snapshots['files']}</b> — " in listing.content["formatted_body"]

    only = await alice.command(bot.room_id, "!backup list files", bot.user_id, timeout=30)
    assert "files:" in only.body and "big:" not in only.body

    stats = await alice.command(bot.room_id, "!backup stats", bot.user_id, timeout=30)
    assert "Repository" in stats.body and "dedup" in stats.body
    assert re.search(r"✅ files: last success .* manual, snapshot " + world.snapshots["files"], stats.body)
    assert "✅ slow: last success" in stats.body
    assert f"⚠️ The backups are in {world.repo}, on the same disk as the data it protects" in stats.body


async def test_setup_checks_and_b2_needs_the_account_key(alice, bob, world):
    bot = world.bot
    check = await alice.command(bot.room_id, "!backup setup", bot.user_id, timeout=30)
    assert "✅ restic found" in check.body and f"✅ repository {world.repo} opens" in check.body
    assert "❌" not in check.body and "Next: !backup now" in check.body

    # `b2` replaces the key file the backups use: another admin approves it first
    command_id, _, rid = await request_for(alice, bot, "!backup setup b2 family-backups-3f9a")
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    b2 = await result_reply(alice, command_id, bot, "account key", timeout=30)
    assert "the Backblaze B2 account key is not configured" in b2.body and "[backup.b2]" in b2.body


# --------------------------------------------------------------------------- restore


async def test_restore_into_place_after_approval(alice, bob, world):
    bot = world.bot
    live = world.live("files")
    original = world.root / "original-files"
    shutil.copytree(live, original, symlinks=True)
    (live / "docs" / "note.txt").write_text("ruined")
    shutil.rmtree(live / "photos")
    world.bins.clear()

    command_id, request, rid = await request_for(alice, bot, f"!backup restore {world.snapshots['files']} files")
    assert f"REPLACES {live}" in request.body and "web-app.service" in request.body
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    done = await result_reply(alice, command_id, bot, "restored files", timeout=60)

    assert "verified" in done.body and "pre-restore" in done.body, done.body
    assert_same_tree(original, live)
    assert [c.argv for c in world.bins.calls("systemctl")] == [["stop", "--", "web-app.service"],
                                                                ["start", "--", "web-app.service"]]
    pre = [s for s in await restic_snapshots_json(world) if "reason:pre-restore" in s["tags"]]
    assert len(pre) == 1 and pre[0]["short_id"] in done.body


async def test_restore_to_a_directory_leaves_live_data_alone(alice, bob, world):
    bot = world.bot
    target = world.root / "restored-copy"
    live = world.live("files")
    (live / "docs" / "note.txt").write_text("live data that must stay")
    world.bins.clear()

    command_id, request, rid = await request_for(
        alice, bot, f"!backup restore {world.snapshots['files']} --to {target}")
    assert f"copied into {target}" in request.body
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    done = await result_reply(alice, command_id, bot, "restored files", timeout=60)

    assert "the live data was not touched" in done.body
    assert f"{live} → copied to {target}/files/files" in done.body
    assert_same_tree(world.root / "original-files", target / "files" / "files")
    assert (live / "docs" / "note.txt").read_text() == "live data that must stay"
    assert world.bins.calls("systemctl") == []


async def test_restore_latest_of_every_service_to_a_directory(alice, bob, world):
    """`!backup restore latest --to DIR` without a service: each service's latest snapshot lands in
    DIR/<service>/…, verified, and the live data is left alone."""
    bot = world.bot
    target = world.root / "restored-all"
    in_repo = await restic_snapshots_json(world)
    latest = {}
    for snap in sorted(in_repo, key=lambda s: s["time"]):
        for tag in snap.get("tags") or []:
            if tag.startswith("service:"):
                latest[tag.split(":", 1)[1]] = snap["short_id"]
    world.bins.clear()
    command_id, request, rid = await request_for(alice, bot, f"!backup restore latest --to {target}")
    assert "The latest snapshot of every service (files, big, slow)" in request.body
    assert f"copied into {target}/<service>" in request.body
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    done = await result_reply(alice, command_id, bot, "✅ restored", timeout=120)
    for service in ("files", "big", "slow"):
        if service in latest:
            assert f"✅ restored {service} from snapshot {latest[service]}" in done.body, done.body
            assert (target / service).is_dir()
        else:
            assert f"{service}: no snapshot yet, nothing restored" in done.body, done.body
    assert "big" in latest, "the big service was backed up by an earlier test"
    assert_same_tree(world.live("big"), target / "big" / "big")
    assert world.bins.calls("systemctl") == [], "no unit was stopped: the live data was not touched"


# --------------------------------------------------------------------------- retention and drill


async def test_prune_applies_quotas_to_automatic_snapshots_only(alice, bob, world):
    bot = world.bot
    restic = world.restic()
    times = [datetime(2024, 1, 1, 10), datetime(2024, 1, 1, 12), datetime(2024, 1, 2, 9), datetime(2024, 1, 3, 9)]
    auto = [(await restic.backup([world.live("files")], tags=["service:files", "reason:auto"], host="testhost",
                                 time=t)).snapshot_id[:8] for t in times]
    before = {s["short_id"] for s in await restic_snapshots_json(world)}

    command_id, _, rid = await request_for(alice, bot, "!backup prune")     # it deletes: needs approval
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    reply = await result_reply(alice, command_id, bot, "retention applied", timeout=60)

    assert "kept 2, removed 2" in reply.body   # keep_last 1 + keep_daily 2: jan03 and jan02
    after = {s["short_id"] for s in await restic_snapshots_json(world)}
    assert after == before - {auto[0], auto[1]}


async def test_forget_one_snapshot_after_approval(alice, bob, world):
    bot = world.bot
    made = await alice.wait_for(from_bot(bot, "✅ slow: snapshot", await alice.send(bot.room_id, "!backup now slow")),
                                timeout=30)
    victim = snapshot_id(made.body, "slow")
    command_id, request, rid = await request_for(alice, bot, f"!backup forget {victim}")
    assert f"Snapshot {victim} of slow" in request.body and "REMOVED for good" in request.body
    assert victim in {s["short_id"] for s in await restic_snapshots_json(world)}
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    done = await result_reply(alice, command_id, bot, "is gone", timeout=60)
    assert done.body.startswith(f"🗑 snapshot {victim} of slow (")
    assert victim not in {s["short_id"] for s in await restic_snapshots_json(world)}


async def test_drill_reports_ok_then_alerts_on_a_tampered_live_file(alice, world):
    bot = world.bot
    await alice.wait_for(from_bot(bot, "✅ files: snapshot", await alice.send(bot.room_id, "!backup now files")),
                         timeout=30)
    ok = await alice.wait_for(from_bot(bot, "restore drill", await alice.send(bot.room_id, "!backup drill files")),
                              timeout=60)
    assert re.search(r"✅ files: \d+ files restored from snapshot [0-9a-f]{8} match the live files", ok.body), ok.body

    victim = world.live("files") / "photos" / "Фото ünï 📷.bin"
    before = victim.stat()
    data = bytearray(victim.read_bytes())
    data[1000] ^= 0x55
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))   # looks unchanged: bit rot

    command_id = await alice.send(bot.room_id, "!backup drill files")
    bad = await alice.wait_for(from_bot(bot, "restore drill", command_id), timeout=60)
    alert = await alice.wait_for(lambda e: e.sender == bot.user_id and "🚨 restore drill of files" in e.body,
                                 timeout=30)

    assert "❌ files: 1 of" in bad.body and victim.name in bad.body
    assert set(alert.content["m.mentions"]["user_ids"]) == ADMINS and "What to do" in alert.body


# --------------------------------------------------------------------------- failures and the watchdog


@pytest.fixture(scope="module")
async def broken(make_bot, tmp_path_factory) -> World:
    """A bot whose repository is an S3 endpoint where nothing listens; the watchdog runs every second."""
    root = tmp_path_factory.mktemp("backup-broken")
    make_tree(root / "live" / "files")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    password_file = root / "restic-password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    bins = FakeBin(root)
    bins.add("systemctl", [Rule(match=["**"])])
    repo = (f'kind = "s3"\nendpoint = "http://127.0.0.1:{port}"\nbucket = "family-backups"\n'
            f'access_key_id = "spbot"\nsecret_access_key = {{env = "SPBOT_TEST_S3_SECRET"}}')
    services = f'[backup.services.files]\npaths = ["{root}/live/files"]\n'
    extra = backup_config(repo, password_file, bins, services, max_age='"4s"', watchdog_interval='"1s"')
    bot = await make_bot("backup-broken", extra=extra, env=bins.env(SPBOT_TEST_S3_SECRET="s3-secret-b7e1"))
    return World(bot, root, root / "nowhere", password_file, bins)


async def test_unreachable_repository_gives_a_clear_error_and_an_alert(alice, broken):
    bot = broken.bot
    command_id = await alice.send(bot.room_id, "!backup now")

    failed = await alice.wait_for(from_bot(bot, "backup failed", command_id), timeout=40)
    alert = await alice.wait_for(lambda e: e.sender == bot.user_id and "manual backup of files failed" in e.body,
                                 timeout=20)

    assert "files: backup failed" in failed.body and "cannot be reached" in failed.body
    assert "connection refused" in failed.body and "What to do: check the server's network" in failed.body
    assert "s3-secret-b7e1" not in failed.body + alert.body and PASSWORD not in failed.body
    assert set(alert.content["m.mentions"]["user_ids"]) == ADMINS


async def test_watchdog_alerts_when_a_service_has_no_recent_success(alice, broken):
    bot = broken.bot
    alert = await alice.wait_for(lambda e: e.sender == bot.user_id and "no successful backup of files for" in e.body,
                                 timeout=30)
    assert "never backed up" in alert.body and "🚨" in alert.body
    assert set(alert.content["m.mentions"]["user_ids"]) == ADMINS


# --------------------------------------------------------------------------- scheduled backups


async def test_scheduled_backups_are_quiet_on_success_and_the_digest_is_one_line(alice, make_bot, tmp_path_factory):
    root = tmp_path_factory.mktemp("backup-auto")
    make_tree(root / "live" / "docs")
    repo, password_file = await new_repository(root)
    bins = FakeBin(root)
    bins.add("systemctl", [Rule(match=["**"])])
    services = f'[backup.services.docs]\npaths = ["{root}/live/docs"]\n'
    extra = backup_config(f'kind = "local"\npath = "{repo}"', password_file, bins, services,
                          schedule='"*/3 * * * * *"', digest_schedule='"*/10 * * * * *"', misfire_grace='"10s"')
    bot = await make_bot("backup-auto", extra=extra, env=bins.env())
    world = World(bot, root, repo, password_file, bins)

    digest = await alice.wait_for(lambda e: e.sender == bot.user_id and "🗄 backups, last 24 h: docs ✅" in e.body,
                                  timeout=40)

    auto = [s for s in await restic_snapshots_json(world) if "reason:auto" in s["tags"]]
    assert auto and all("service:docs" in s["tags"] for s in auto)
    head, warning = digest.body.split("\n")   # one line, plus: the repository is on this disk
    assert "on the same disk as the data it protects" in warning and digest.content.get("m.mentions") == {}
    said = [e for e in alice.events if e.sender == bot.user_id and e.type == "m.room.message"
            and e.reply_to is None and "🗄" not in e.body and "new device" not in e.body]
    assert said == [], [e.body for e in said]
