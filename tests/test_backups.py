"""spbot/features/backup/ against the real restic: local and S3 (moto) repositories, restores that verify
before replacing, retention, the drill, crashes, full disks, and B2 set-up on b2sdk's simulator."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from b2sdk.v2 import B2HttpApiConfig
from pydantic import ValidationError

from spbot.providers.b2 import B2Provider, make_api
from spbot.context import UserError
from spbot.features.backup import (BackupSettings, Backups, render_digest, render_forget, render_list, render_stats,
                                   reply_for, restic_pattern)
from spbot.features.backup.alerting import overdue
from spbot.features.backup.model import Stopper
from spbot.features.backup.recovery import finish_what_a_stop_left
from spbot.features.backup.restore_files import aside_of
from spbot.scheduler import cron_trigger
from spbot.store import Store
from spbot.system.restic import LocalRepository, Restic, ResticFailure
from tests.fakebin import FakeBin, Rule
from tests.fakes.b2_simulator import AccountScopedSimulator
from tests.test_restic_adapter import (AUTO_TIMES, assert_same_tree, cheapen_key, kill_restic, make_big_tree,
                                       make_tree, restic_children)

pytestmark = pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed")

PASSWORD = "backups test password 5c2e9"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
async def template_repo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("backups-template") / "repo"
    await Restic(LocalRepository(path=path), PASSWORD, cache_dir=path.parent / "cache").init()
    cheapen_key(path, PASSWORD)
    return path


def password_file(directory: Path, password: str = PASSWORD) -> Path:
    path = directory / "restic-password"
    path.write_text(password + "\n")
    path.chmod(0o600)
    return path


def settings_for(tmp: Path, repo: Path | dict, **extra) -> BackupSettings:
    live = tmp / "live"
    services = extra.pop("services", None) or {
        "files": {"paths": [str(live / "files")], "units": ["web-app"]},
        "mail": {"paths": [str(live / "mail")]},
    }
    repository = repo if isinstance(repo, dict) else {"kind": "local", "path": str(repo)}
    return BackupSettings.model_validate({
        "repository": repository, "password": {"file": str(password_file(tmp))},
        "services": services, "host": "testhost", **extra})


@pytest.fixture
async def store(tmp_path):
    s = await Store(tmp_path / "state" / "spbot.db").open()
    yield s
    await s.close()


@pytest.fixture
def repo(template_repo, tmp_path) -> Path:
    path = tmp_path / "repo"
    shutil.copytree(template_repo, path)
    return path


@pytest.fixture
def live(tmp_path) -> Path:
    root = tmp_path / "live"
    make_tree(root / "files")
    (root / "files" / "a[1] *glob?.txt").write_text("pattern characters in a name\n")
    (root / "mail").mkdir(parents=True)
    (root / "mail" / "inbox").write_text("hello\n" * 100)
    return root


@pytest.fixture
def backups(tmp_path, repo, live, store) -> Backups:
    return Backups(settings_for(tmp_path, repo), tmp_path / "state", store)


def restic_of(backups: Backups) -> Restic:
    return backups.restic()


async def rows(store: Store) -> list[dict]:
    return [dict(r) for r in await store.fetchall("SELECT * FROM backup_runs ORDER BY id")]


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


# --------------------------------------------------------------------------- settings


def test_settings_defaults_and_clear_errors(tmp_path):
    defaults = BackupSettings()
    assert defaults.repository.kind == "local" and defaults.repository.path is None
    assert BackupSettings.model_validate({"repository": {"path": "/mnt/usb"}}).repository.kind == "local"
    assert defaults.schedule == "0 3 * * *" and defaults.max_age == 26 * 3600
    assert defaults.retention.flags() == ["--keep-daily=7", "--keep-weekly=4", "--keep-monthly=6"]
    assert Backups(defaults, tmp_path, None).repository().location() == str(tmp_path / "restic-repo")
    assert Backups(defaults, tmp_path, None).password_path() == tmp_path / "restic-password"

    bad = [
        {"services": {"Bad Name": {"paths": ["/srv"]}}},
        {"services": {"ok": {"paths": ["relative/path"]}}},
        {"services": {"ok": {"paths": []}}},
        {"services": {"ok": {"paths": ["/srv"], "units": ["rm -rf /"]}}},
        {"schedule": "every day"},
        {"retention": {}},
        {"repository": {"kind": "s3", "endpoint": "ftp://x", "bucket": "b-1", "access_key_id": "i",
                        "secret_access_key": {"env": "X"}}},
        {"password": "inline-secret"},
        {"unknown_key": 1},
    ]
    for data in bad:
        with pytest.raises(ValidationError):
            BackupSettings.model_validate(data)


def test_crontab_weekdays_count_from_sunday_and_seconds_are_optional():
    sunday = cron_trigger("0 5 * * 0", "UTC").get_next_fire_time(None, datetime(2024, 1, 1, tzinfo=None)
                                                                   .astimezone())
    assert sunday.strftime("%a %H:%M") == "Sun 05:00"
    every_two = cron_trigger("*/2 * * * * *", "UTC")
    first = every_two.get_next_fire_time(None, datetime(2024, 1, 1, 0, 0, 1).astimezone())
    assert first.second % 2 == 0


def test_include_patterns_are_escaped():
    assert restic_pattern("/srv/a[1] *x?.txt") == r"/srv/a\[1\] \*x\?.txt"


# --------------------------------------------------------------------------- backing up and restoring


async def test_round_trip_with_pre_and_post_commands(tmp_path, repo, live, store):
    order = tmp_path / "order.log"
    settings = settings_for(tmp_path, repo, services={"files": {
        "paths": [str(live / "files")], "excludes": ["*.skip"],
        "pre": [["sh", "-c", f"echo pre >> {order}; echo dumped > {live / 'files' / 'db.dump'}"]],
        "post": [["sh", "-c", f"echo post >> {order}"]]}})
    (live / "files" / "cache.skip").write_text("not wanted")
    backups = Backups(settings, tmp_path / "state", store)
    steps: list[tuple[str, float | None]] = []

    async def progress(step, fraction):
        steps.append((step, fraction))

    [outcome] = await backups.run(["files"], "manual", progress)

    assert outcome.ok, outcome.error
    assert order.read_text() == "pre\npost\n"
    assert outcome.summary.files_new == 7 and outcome.summary.data_added > 0
    assert "snapshot " + outcome.snapshot_id in outcome.line() and "7 new" in outcome.line()
    assert steps[0][0] == "files: pre command 1 (sh)" and any("post command" in s for s, _ in steps)
    [snapshot] = await restic_of(backups).snapshots()
    assert sorted(snapshot.tags) == ["reason:manual", "service:files"]
    [row] = await rows(store)
    assert row["ok"] == 1 and row["snapshot_id"].startswith(outcome.snapshot_id) and row["error"] is None

    target = tmp_path / "restored"
    report = await backups.restore_to(outcome.snapshot_id, None, target)
    (live / "files" / "cache.skip").unlink()
    assert_same_tree(live / "files", target / "files" / "files")   # target/<service>/<path>
    assert report.paths[0].files == 7 and not report.into_place
    assert report.paths[0].copy == str(target / "files" / "files")
    assert sorted(p.name for p in target.iterdir()) == ["files"]


async def test_pre_command_failure_makes_no_snapshot_but_post_runs(tmp_path, repo, live, store):
    marker = tmp_path / "post-ran"
    settings = settings_for(tmp_path, repo, services={"files": {
        "paths": [str(live / "files")],
        "pre": [["sh", "-c", f"echo 'dump failed: {PASSWORD}' >&2; exit 3"]],
        "post": [["touch", str(marker)]]}})
    backups = Backups(settings, tmp_path / "state", store)

    [outcome] = await backups.run()

    assert not outcome.ok and marker.exists()
    assert "pre command 1 (sh) failed" in outcome.error and "exit 3" in outcome.error
    assert PASSWORD not in outcome.error and "dump failed: ***" in outcome.error
    assert await restic_of(backups).snapshots() == []
    [row] = await rows(store)
    assert row["ok"] == 0 and row["snapshot_id"] is None
    with pytest.raises(UserError) as caught:
        reply_for([outcome])
    assert caught.value.what.startswith("files: backup failed") and "What to do" in caught.value.what


async def test_restore_into_place_verifies_then_replaces_with_units_stopped(tmp_path, backups, live):
    bins = FakeBin(tmp_path)
    bins.add("systemctl", [Rule(match=["**"])])
    backups.settings = backups.settings.model_copy(update={"systemctl": str(bins.dir / "systemctl")})
    original = copy_tree(live / "files", tmp_path / "original")
    [first, _] = await backups.run()
    (live / "files" / "docs" / "note.txt").write_text("overwritten by mistake")
    (live / "files" / "empty.dat").unlink()
    (live / "files" / "new-since.txt").write_text("made after the snapshot")
    damaged = copy_tree(live / "files", tmp_path / "damaged")

    report = await backups.restore_into_place(first.snapshot_id, "files")

    assert_same_tree(original, live / "files")
    assert [c.argv for c in bins.calls("systemctl")] == [["stop", "--", "web-app.service"],
                                                          ["start", "--", "web-app.service"]]
    assert report.pre_restore and report.units == ["web-app.service"]
    leftovers = [p.name for p in (live).iterdir() if p.name.startswith(".spbot-")]
    assert leftovers == []
    # The replaced data is in the pre-restore snapshot.
    snaps = await backups.snapshots("files")
    [pre] = [s for s in snaps if "reason:pre-restore" in s.tags]
    assert pre.short_id == report.pre_restore
    check = await backups.restore_to(pre.short_id, "files", tmp_path / "check")
    assert_same_tree(damaged, Path(check.paths[0].copy))


async def test_restore_does_not_replace_anything_when_units_do_not_stop(tmp_path, backups, live):
    bins = FakeBin(tmp_path)
    bins.add("systemctl", [Rule(match=["stop", "**"], exit=1, stderr="Failed to stop web-app.service\n"),
                           Rule(match=["**"])])
    backups.settings = backups.settings.model_copy(update={"systemctl": str(bins.dir / "systemctl")})
    [first, _] = await backups.run()
    (live / "files" / "docs" / "note.txt").write_text("current data")

    with pytest.raises(UserError) as caught:
        await backups.restore_into_place(first.snapshot_id, None)

    assert "systemctl stop web-app.service failed, so nothing was replaced" in caught.value.what
    assert (live / "files" / "docs" / "note.txt").read_text() == "current data"
    assert [c.argv[0] for c in bins.calls("systemctl")] == ["stop", "start"]
    assert not [p for p in live.iterdir() if p.name.startswith(".spbot-")]


async def test_restore_to_refuses_live_paths_and_non_empty_directories(tmp_path, backups, live):
    [first] = await backups.run(["files"])
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    for target, words in [(live / "files" / "sub", "overlaps the live data"), (live, "overlaps"),
                          (busy, "not an empty directory"), (Path("relative"), "absolute path")]:
        with pytest.raises(UserError) as caught:
            await backups.restore_to(first.snapshot_id, None, target)
        assert words in caught.value.what
    with pytest.raises(UserError) as caught:
        await backups.restore_to(first.snapshot_id, "mail", tmp_path / "t")
    assert "belongs to files, not mail" in caught.value.what
    with pytest.raises(UserError):
        await backups.restore_to("--help", None, tmp_path / "t")


async def test_list_rendering_has_time_reason_and_size(tmp_path, backups):
    await backups.run(["files"])
    restic = restic_of(backups)
    snapshots = await backups.snapshots(None, restic)
    reply = render_list(snapshots, await backups.snapshot_sizes(snapshots, restic), "UTC")
    assert "files: 1 snapshot(s)" in reply.body and "manual" in reply.body and "KiB" in reply.body


# --------------------------------------------------------------------------- crashes, locks, failures


async def test_restic_killed_mid_backup_then_next_run_unlocks_and_check_passes(tmp_path, repo, store):
    big = make_big_tree(tmp_path / "big", megabytes=48)
    settings = settings_for(tmp_path, repo, services={"big": {"paths": [str(big)]}}, progress_fps=30)
    backups = Backups(settings, tmp_path / "state", store)

    async def kill_when_data_flows(step, fraction):
        if fraction and restic_children():
            kill_restic()

    [killed] = await backups.run(["big"], "auto", kill_when_data_flows)
    assert killed.kind is ResticFailure.KILLED and "SIGKILL" in killed.error
    assert not await store.fetchone("SELECT 1 FROM backup_runs WHERE ok = 1")

    [again] = await backups.run(["big"], "auto")

    assert again.ok and "removed stale locks left by an interrupted restic run" in again.notes
    assert (await restic_of(backups).check()).ok
    assert [r["ok"] for r in await rows(store)] == [0, 1]


async def test_unreachable_s3_is_a_clear_error_and_leaves_no_success(tmp_path, live, store, monkeypatch):
    monkeypatch.setenv("S3_SECRET", "s3-secret-never-shown")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = settings_for(tmp_path, {"kind": "s3", "endpoint": f"http://127.0.0.1:{port}", "bucket": "backups",
                                       "access_key_id": "id", "secret_access_key": {"env": "S3_SECRET"}})
    backups = Backups(settings, tmp_path / "state", store)

    outcomes = await backups.run()

    assert [o.service for o in outcomes] == ["files", "mail"]
    failed, skipped = outcomes
    assert failed.kind is ResticFailure.UNREACHABLE and "cannot be reached" in failed.error
    assert "network" in failed.todo and "s3-secret-never-shown" not in failed.error
    assert skipped.skipped and "not attempted" in skipped.line()
    assert [(r["service"], r["ok"]) for r in await rows(store)] == [("files", 0)]


async def test_wrong_password_is_named_and_never_shown(tmp_path, repo, live, store):
    settings = settings_for(tmp_path, repo)
    password_file(tmp_path, "wrong-password-123456")
    backups = Backups(settings, tmp_path / "state", store)

    failed, _ = await backups.run()

    assert failed.kind is ResticFailure.WRONG_PASSWORD and "wrong repository password" in failed.error
    assert str(tmp_path / "restic-password") in failed.todo
    assert "wrong-password-123456" not in failed.error + failed.todo


async def test_full_disk_is_a_clear_error(tmp_path, repo, store):
    """The repository on a 3 MiB tmpfs, mounted in a private mount namespace that only this restic sees."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root for a private tmpfs")
    mount = tmp_path / "small"
    mount.mkdir()
    wrapper = tmp_path / "restic-on-small-disk"
    wrapper.write_text(f"""#!/bin/sh
exec unshare -m sh -c 'mount -t tmpfs -o size=3m tmpfs {mount} && cp -a {repo}/. {mount}/ && exec restic "$@"' restic "$@"
""")
    wrapper.chmod(0o755)
    big = make_big_tree(tmp_path / "big", megabytes=8)
    settings = settings_for(tmp_path, mount, services={"big": {"paths": [str(big)]}}, restic=str(wrapper))
    backups = Backups(settings, tmp_path / "state", store)

    [outcome] = await backups.run()

    assert outcome.kind is ResticFailure.NO_SPACE and "no space left on device" in outcome.error
    assert "free disk space" in outcome.todo
    assert not await store.fetchone("SELECT 1 FROM backup_runs WHERE ok = 1")
    assert not any(mount.iterdir())  # the tmpfs was never visible outside


async def test_new_default_repository_is_created_with_a_private_password(tmp_path, live, store):
    settings = BackupSettings.model_validate({"services": {"mail": {"paths": [str(live / "mail")]}}})
    backups = Backups(settings, tmp_path / "state", store)

    [outcome] = await backups.run()

    assert outcome.ok and any("keep a copy of that file" in n for n in outcome.notes)
    password = tmp_path / "state" / "restic-password"
    assert stat.S_IMODE(password.stat().st_mode) == 0o600
    assert password.read_text().strip() not in outcome.line()
    assert (tmp_path / "state" / "restic-repo" / "config").exists()


# --------------------------------------------------------------------------- retention


async def test_retention_keeps_exactly_the_quotas_and_only_automatic_snapshots(tmp_path, repo, live, store):
    settings = settings_for(tmp_path, repo, retention={"keep_last": 1, "keep_daily": 3, "keep_monthly": 2})
    backups = Backups(settings, tmp_path / "state", store)
    restic = restic_of(backups)
    made: dict[tuple[str, str], str] = {}
    for service in ("files", "mail"):
        for label, when in AUTO_TIMES.items():
            s = await restic.backup([live / service], tags=[f"service:{service}", "reason:auto"], host="testhost",
                                    time=when)
            made[(service, label)] = s.snapshot_id[:8]
    manual = await restic.backup([live / "files"], tags=["service:files", "reason:manual"], host="testhost",
                                 time=datetime(2023, 6, 1))
    pre = await restic.backup([live / "files"], tags=["service:files", "reason:pre-restore"], host="testhost",
                              time=datetime(2024, 1, 1, 11))

    result = await backups.forget()

    # per service: last feb15; daily feb15, jan10, jan03; monthly feb15 (Feb), jan10 (Jan)
    keep = {made[(s, k)] for s in ("files", "mail") for k in ("feb15", "jan10", "jan03")}
    assert {s.short_id for s in result.auto.kept} == keep and len(result.auto.removed) == 6
    # the one manual snapshot stays (the last 10 per service); the pre-restore one is past 30 days
    assert [s.short_id for s in result.manual.kept] == [manual.snapshot_id[:8]]
    assert [s.short_id for s in result.pre_restore.removed] == [pre.snapshot_id[:8]]
    remaining = {s.short_id for s in await restic.snapshots()}
    assert remaining == keep | {manual.snapshot_id[:8]}
    assert (await restic.check()).ok


async def test_manual_and_pre_restore_snapshots_have_their_own_retention(tmp_path, repo, live, store):
    settings = settings_for(tmp_path, repo, keep_manual=2, keep_pre_restore_days=7)
    backups = Backups(settings, tmp_path / "state", store)
    restic = restic_of(backups)
    now = datetime.now()

    async def snap(service: str, reason: str, days_ago: float) -> str:
        made = await restic.backup([live / service], tags=[f"service:{service}", f"reason:{reason}"],
                                   host="testhost", time=now - timedelta(days=days_ago))
        return made.snapshot_id[:8]

    files_manual = [await snap("files", "manual", d) for d in (30, 20, 10)]
    mail_manual = await snap("mail", "manual", 40)
    old_pre, new_pre = await snap("files", "pre-restore", 8), await snap("files", "pre-restore", 1)

    result = await backups.forget()

    remaining = {s.short_id for s in await restic.snapshots()}
    assert remaining == {files_manual[1], files_manual[2], mail_manual, new_pre}
    assert {s.short_id for s in result.manual.removed} == {files_manual[0]}
    assert [s.short_id for s in result.pre_restore.removed] == [old_pre]
    text = render_forget(result).body
    assert "manual (the last 2 per service): kept 3, removed 1" in text
    assert "pre-restore (7 days): kept 1, removed 1" in text


async def test_forget_one_snapshot(tmp_path, backups):
    [files, mail] = await backups.run()
    gone, service = await backups.forget_snapshot(files.snapshot_id[:8])
    assert (gone.short_id, service) == (files.snapshot_id[:8], "files")
    assert [s.short_id for s in await backups.snapshots()] == [mail.snapshot_id[:8]]
    for bad in ("--prune", "zzzz", files.snapshot_id[:8]):
        with pytest.raises(UserError):
            await backups.forget_snapshot(bad)
    assert (await restic_of(backups).check()).ok


async def test_restore_to_keeps_several_paths_apart_under_the_service(tmp_path, repo, live, store):
    (live / "conf").mkdir()
    (live / "conf" / "app.ini").write_text("[app]\n")
    settings = settings_for(tmp_path, repo, services={
        "app": {"paths": [str(live / "files" / "docs"), str(live / "conf")]}})
    backups = Backups(settings, tmp_path / "state", store)
    [outcome] = await backups.run()
    target = tmp_path / "copy"
    report = await backups.restore_to(outcome.snapshot_id, None, target)
    # common parent of the paths is live/ → target/app/files/docs and target/app/conf
    assert (target / "app" / "conf" / "app.ini").read_text() == "[app]\n"
    assert_same_tree(live / "files" / "docs", target / "app" / "files" / "docs")
    assert {p.copy for p in report.paths} == {str(target / "app" / "files" / "docs"),
                                              str(target / "app" / "conf")}
    assert sorted(p.name for p in target.iterdir()) == ["app"]


async def test_a_repository_on_this_server_is_said_until_acknowledged(tmp_path, live, store, repo):
    default = Backups(BackupSettings.model_validate({"services": {"mail": {"paths": [str(live / "mail")]}}}),
                      tmp_path / "state", store)
    warning = default.same_disk_warning()
    assert warning.startswith(f"⚠️ The backups are in {tmp_path / 'state' / 'restic-repo'}, on the same disk "
                              "as the data it protects")
    said = await default.init()
    assert warning in said
    await default.run(["mail"], "auto")
    assert warning in (await render_digest(default, time.time(), "UTC")).body
    assert warning in render_stats(await default.stats(), "UTC").body

    known = Backups(BackupSettings.model_validate({"services": {"mail": {"paths": [str(live / "mail")]}},
                                                   "same_disk_ok": True}), tmp_path / "state", store)
    assert known.same_disk_warning() is None
    offsite = Backups(settings_for(tmp_path, {"kind": "s3", "endpoint": "http://127.0.0.1:9", "bucket": "family",
                                              "access_key_id": "i", "secret_access_key": {"env": "NOPE"}}),
                      tmp_path / "state", store)
    assert offsite.same_disk_warning() is None


# --------------------------------------------------------------------------- drill


async def test_drill_passes_then_finds_a_tampered_file(tmp_path, repo, live, store):
    backups = Backups(settings_for(tmp_path, repo, drill_files=100), tmp_path / "state", store)
    await backups.run(["files"])
    (live / "files" / "docs" / "deep" / "deeper" / "leaf.txt").write_text("changed since, not compared")

    [ok] = await backups.drill(["files"])

    assert ok.ok and ok.files == 6 and ok.checked == 5 and ok.comparable == 5  # leaf.txt changed since
    victim = live / "files" / "docs" / "note.txt"
    before = victim.stat()
    content = bytearray(victim.read_bytes())
    content[10] ^= 0xFF
    victim.write_bytes(bytes(content))
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))

    [bad] = await backups.drill(["files"])

    assert bad.mismatches == [str(victim)] and not bad.ok


async def test_drill_without_snapshots_says_so(tmp_path, backups):
    [result] = await backups.drill(["mail"])
    assert result.error == "no snapshot yet"


# --------------------------------------------------------------------------- watchdog and digest


async def test_watchdog_counts_from_last_success_or_first_sight(tmp_path, backups, store):
    now = time.time()
    assert await overdue(backups, now) == []  # first sight starts the grace period
    late = await overdue(backups, now + 27 * 3600)
    assert [name for name, _, _ in late] == ["files", "mail"]
    await backups.run(["files"])
    late = await overdue(backups, time.time() + 3600)
    assert late == []
    late = await overdue(backups, time.time() + 27 * 3600)
    assert [(name, row is not None) for name, _, row in late] == [("files", True), ("mail", False)]


async def test_digest_is_one_line_per_day(tmp_path, backups):
    await backups.run(["files"], "auto")
    reply = await render_digest(backups, time.time(), "UTC")
    assert reply.body.startswith("🗄 backups, last 24 h: files ✅ 1×") and "mail ⚠️ no backup" in reply.body
    first, warning = reply.body.split("\n")   # one line, and the local-repository warning
    assert warning.startswith("⚠️ The backups are in") and "on the same disk" in warning


# --------------------------------------------------------------------------- Backblaze B2 (b2sdk simulator)


@pytest.fixture
def b2_api():
    return make_api(B2HttpApiConfig(_raw_api_class=AccountScopedSimulator))


async def test_b2_setup_makes_bucket_lifecycle_and_restricted_key_stored_privately(tmp_path, store, b2_api):
    sim = b2_api.session.raw_api
    master_id, master_key = sim.create_account()
    (tmp_path / "b2-master").write_text(master_key + "\n")
    settings = BackupSettings.model_validate({
        "repository": {"kind": "b2", "bucket": "family-backups-3f9a", "prefix": "vps"},
        "b2": {"master_key_id": master_id, "master_key": {"file": str(tmp_path / "b2-master")},
               "keep_deleted_days": 45},
        "services": {"mail": {"paths": ["/srv/mail"]}}})
    backups = Backups(settings, tmp_path / "state", store,
                      b2_provider=lambda key_id, key: B2Provider(key_id, key, api=b2_api))

    done = await backups.setup_b2()

    assert done.bucket == "family-backups-3f9a" and done.created and done.keep_deleted_days == 45
    bucket = b2_api.get_bucket_by_name("family-backups-3f9a")
    assert bucket.type_ == "allPrivate"
    assert {"fileNamePrefix": "", "daysFromHidingToDeleting": 45,
            "daysFromUploadingToHiding": None} in bucket.lifecycle_rules
    stored = json.loads(done.key_file.read_text())
    assert stat.S_IMODE(done.key_file.stat().st_mode) == 0o600
    [key] = [k for k in b2_api.list_keys() if k.id_ == stored["key_id"]]
    assert key.bucket_id == bucket.id_ and "writeKeys" not in key.capabilities
    # restic gets the restricted key, never the master key
    repo = backups.repository()
    assert stored["s3_endpoint"] == b2_api.account_info.get_s3_api_url()   # the account's S3 endpoint
    assert repo.location() == f"s3:{stored['s3_endpoint']}/family-backups-3f9a/vps"
    assert repo.environment() == {"AWS_ACCESS_KEY_ID": stored["key_id"], "AWS_SECRET_ACCESS_KEY": stored["key"]}
    from spbot.features.backup import render_b2_setup
    text = render_b2_setup(done, backups)
    assert stored["key"] not in text and master_key not in text and "!backup setup init" in text

    # usage for !backup stats, read with the restricted key
    bucket.upload_bytes(b"x" * 1234, "vps/data/00/pack")
    usage = await backups.b2_provider(stored["key_id"], stored["key"]).usage("family-backups-3f9a")
    assert (usage.file_count, usage.total_bytes) == (1, 1234)

    again = await backups.setup_b2()
    assert not again.created


async def test_a_key_from_before_the_s3_api_asks_for_setup_again(tmp_path, store):
    """Migration: a key file written when spbot used restic's native b2: backend has no S3 endpoint."""
    key_file = tmp_path / "b2-restic-key.json"
    key_file.write_text(json.dumps({"key_id": "0051234", "key": "K005secret", "bucket": "family-backups-3f9a"}))
    settings = BackupSettings.model_validate({"repository": {"kind": "b2", "bucket": "family-backups-3f9a",
                                                             "key_file": str(key_file)}})
    with pytest.raises(UserError) as caught:
        Backups(settings, tmp_path, store).repository()
    assert "S3 endpoint is not known" in caught.value.what and "!backup setup b2" in caught.value.todo
    pinned = settings.model_copy(update={"repository": settings.repository.model_copy(
        update={"endpoint": "https://s3.us-west-004.backblazeb2.com"})})
    repo = Backups(pinned, tmp_path, store).repository()
    assert repo.location() == "s3:https://s3.us-west-004.backblazeb2.com/family-backups-3f9a"


async def test_b2_setup_explains_a_missing_account_key(tmp_path, store):
    settings = BackupSettings.model_validate({"repository": {"kind": "b2", "bucket": "family-backups-3f9a"}})
    with pytest.raises(UserError) as caught:
        await Backups(settings, tmp_path, store).setup_b2()
    assert "[backup.b2]" in caught.value.todo
    with pytest.raises(UserError) as caught:
        Backups(settings, tmp_path, store).repository()
    assert "!backup setup b2" in caught.value.todo


async def test_check_setup_lines(tmp_path, backups):
    lines = await backups.check_setup()
    assert all(mark == "ok" for mark, _ in lines), lines
    assert [text.split(" ")[0] for _, text in lines] == ["restic", "repository", "repository", "service", "service"]
    assert any("opens (0 snapshots)" in text for _, text in lines)


async def test_doctor_checks_give_backup_lines(tmp_path, repo, live):
    from spbot.config import Config
    from spbot.feature import Check
    from spbot.features.backup import BackupFeature
    settings = settings_for(tmp_path, repo)
    config = Config(homeserver="http://127.0.0.1:1", user_id="@bot:localhost", password={"env": "X"},
                    admins=["@alice:localhost"], rooms=["!room:localhost"], state_dir=tmp_path / "state",
                    backup=settings.model_dump(mode="json", exclude_defaults=True)
                    | {"password": {"file": str(tmp_path / "restic-password")}})

    checks = await BackupFeature.doctor(config)

    failures = sum(1 for c in checks if c.state == "fail")
    assert failures == 0 and checks[0] == Check("ok", f"backup: restic found at {shutil.which('restic')}")
    assert any("opens (0 snapshots)" in c.text for c in checks)
    (tmp_path / "restic-password").chmod(0o644)
    (tmp_path / "restic-password").write_text("not-the-password-0d1\n")
    checks = await BackupFeature.doctor(config)
    assert sum(1 for c in checks if c.state == "fail") == 1
    assert checks[1].state == "warn" and "chmod 600" in checks[1].text
    assert any(c.state == "fail" and "wrong repository password" in c.text for c in checks), checks


# --------------------------------------------------------------------------- a stop in the middle
# What a stop of the bot leaves undone in a backup or a restore is finished at the next start
# (spbot/features/backup/recovery.py): a real SIGKILL of a process running a backup, and restores cut at
# each phase (their files as a kill leaves them).

ROOT = Path(__file__).resolve().parents[1]
BACKUP_IN_A_PROCESS = """
import asyncio, json, sys
from spbot.features.backup import BackupSettings, Backups
from spbot.store import Store

async def main():
    store = await Store(sys.argv[2]).open()
    settings = BackupSettings.model_validate(json.loads(sys.argv[1]))
    await Backups(settings, sys.argv[3], store).run(["files"], "manual")

asyncio.run(main())
"""


async def test_post_commands_owed_by_a_killed_backup_run_at_the_next_start(tmp_path, repo, live, store):
    """The pre command stopped the family's service, the post command would start it again: a kill in
    between left it stopped for good."""
    order = tmp_path / "order.log"
    settings = settings_for(tmp_path, repo, services={"files": {
        "paths": [str(live / "files")],
        "pre": [["sh", "-c", f"echo pre >> {order}; exec sleep 60"]],
        "post": [["sh", "-c", f"echo post >> {order}"]]}})
    process = subprocess.Popen([sys.executable, "-c", BACKUP_IN_A_PROCESS, settings.model_dump_json(),
                                str(store.path), str(tmp_path / "state")], cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 30
    while not (order.exists() and order.read_text() == "pre\n"):
        assert time.monotonic() < deadline and process.poll() is None, "the pre command never ran"
        await asyncio.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)        # the bot and the pre command's sleep with it
    process.wait()

    backups = Backups(settings, tmp_path / "state", store)     # the next start
    lines = await finish_what_a_stop_left(backups)

    assert order.read_text() == "pre\npost\n"
    assert lines == ["I was stopped during the backup of files, after its pre commands: I ran its post "
                     "commands now"]
    assert await backups.log.owed() == {} and await finish_what_a_stop_left(backups) == []


async def test_a_finished_backup_owes_nothing(tmp_path, repo, live, store):
    settings = settings_for(tmp_path, repo, services={"files": {
        "paths": [str(live / "files")], "post": [["true"]]}})
    backups = Backups(settings, tmp_path / "state", store)
    [outcome] = await backups.run()
    assert outcome.ok and await backups.log.owed() == {}


def restore_cut_short(tmp_path: Path, live: Path, phase: str, database: bool = False) -> dict:
    """The files and record a kill leaves at `phase` of a restore of `live` (with the unit stopped):
    replacing: the old data moved aside and the restored copy not yet in place; replaced: the restored
    copy in place and the old data aside, not yet removed."""
    stage = live.parent / ".spbot-restore-0a1b2c3d-files"
    make_tree(stage / str(live).lstrip("/"))
    (stage / str(live).lstrip("/") / "docs" / "note.txt").write_text("the restored note")
    os.rename(live, aside_of(live, stage))
    if phase == "replaced":
        os.rename(stage / str(live).lstrip("/"), live)
    return {"kind": "restore", "service": "files", "units": ["web-app.service"], "stopper": False,
            "staged": [[str(live), str(stage)]], "snapshot": "0a1b2c3d", "pre_restore": "9f8e7d6c",
            "database": database, "since": time.time(), "phase": phase}


@pytest.fixture
def systemctl(tmp_path) -> FakeBin:
    bins = FakeBin(tmp_path)
    bins.add("systemctl", [Rule(match=["**"])])
    return bins


async def test_a_restore_cut_while_replacing_puts_the_old_data_back(tmp_path, repo, live, store, systemctl):
    before = tmp_path / "before"
    shutil.copytree(live / "files", before, symlinks=True)
    settings = settings_for(tmp_path, repo).model_copy(update={"systemctl": str(systemctl.dir / "systemctl")})
    backups = Backups(settings, tmp_path / "state", store)
    await backups.log.owe("restore:files", restore_cut_short(tmp_path, live / "files", "replacing"))

    [line] = await finish_what_a_stop_left(backups)

    assert_same_tree(before, live / "files")
    assert [p.name for p in live.iterdir() if p.name.startswith(".spbot-")] == []
    assert [c.argv for c in systemctl.calls("systemctl")] == [["start", "--", "web-app.service"]]
    assert line == ("I was stopped in the middle of restoring files from snapshot 0a1b2c3d: I put the data back "
                    "as it was before the restore, and started web-app.service again. Nothing was restored: "
                    "send the restore again if you still want it")
    assert await backups.log.owed() == {}


async def test_a_restore_cut_after_replacing_keeps_the_restored_data_and_says_what_the_database_needs(
        tmp_path, repo, live, store, systemctl):
    settings = settings_for(tmp_path, repo).model_copy(update={"systemctl": str(systemctl.dir / "systemctl")})
    backups = Backups(settings, tmp_path / "state", store)
    await backups.log.owe("restore:files", restore_cut_short(tmp_path, live / "files", "replaced", database=True))

    [line] = await finish_what_a_stop_left(backups)

    assert (live / "files" / "docs" / "note.txt").read_text() == "the restored note"
    assert [p.name for p in live.iterdir() if p.name.startswith(".spbot-")] == []
    assert [c.argv for c in systemctl.calls("systemctl")] == [["start", "--", "web-app.service"]]
    assert line.startswith("I was stopped in the middle of restoring files from snapshot 0a1b2c3d: the restored "
                           "data was already in place, and started web-app.service again. Its database import "
                           "was cut short: restore it again (!backup restore 0a1b2c3d files) or go back to the "
                           "data from before (!backup restore 9f8e7d6c files)"), line


async def test_a_broken_record_is_told_and_does_not_stop_the_others(tmp_path, repo, live, store, systemctl):
    order = tmp_path / "order.log"
    settings = settings_for(tmp_path, repo, services={"files": {
        "paths": [str(live / "files")], "post": [["sh", "-c", f"echo post >> {order}"]]}})
    backups = Backups(settings, tmp_path / "state", store)
    await backups.log.owe("restore:mail", {"kind": "restore", "service": "mail"})     # no phase, no paths
    await backups.log.owe("post:files", {"kind": "post", "service": "files"})

    lines = await finish_what_a_stop_left(backups)

    assert order.read_text() == "post\n"
    assert json.dumps(lines).count("I was stopped") == 2
    assert "restore of mail and could not finish it" in lines[1] and "check that service now" in lines[1]
    assert await backups.log.owed() == {}


async def test_a_restore_cut_short_starts_again_what_another_feature_stopped(tmp_path, repo, live, store):
    """A catalogue service without units (its containers): the services feature's stopper starts it."""
    started = []

    async def start() -> None:
        started.append("nextcloud")
    backups = Backups(settings_for(tmp_path, repo), tmp_path / "state", store)
    backups.stoppers["files"] = Stopper("container(s) nextcloud", stop=lambda: None, start=start)
    record = restore_cut_short(tmp_path, live / "files", "replacing")
    await backups.log.owe("restore:files", {**record, "units": [], "stopper": True})

    [line] = await finish_what_a_stop_left(backups)

    assert started == ["nextcloud"] and "and started container(s) nextcloud again" in line


async def test_a_backup_started_while_a_stop_is_being_finished_waits_for_it(tmp_path, repo, live, store):
    """After a crash during the nightly backup, the scheduler runs the missed one as soon as the bot is
    back: it must not run its pre commands while the recovery runs the post commands of the last one."""
    order = tmp_path / "order.log"
    settings = settings_for(tmp_path, repo, services={"files": {
        "paths": [str(live / "files")], "pre": [["sh", "-c", f"echo pre >> {order}"]],
        "post": [["sh", "-c", f"echo post >> {order}"]]}})
    backups = Backups(settings, tmp_path / "state", store)
    await backups.log.owe("post:files", {"kind": "post", "service": "files"})
    backups.recovered.clear()                                # BackupFeature.start() with a record owed
    late = asyncio.create_task(backups.run(["files"], "auto"))
    await asyncio.sleep(0.5)
    assert not order.exists() and not late.done()
    await finish_what_a_stop_left(backups)                   # BackupFeature.after_start()
    backups.recovered.set()
    [outcome] = await late
    assert outcome.ok and order.read_text() == "post\npre\npost\n"
