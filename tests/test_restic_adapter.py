"""The restic adapter against the real restic binary: local repositories and S3 (moto on loopback)."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.poly1305 import Poly1305

from spbot.system.proc import ProcResult
from spbot.system.restic import (
    B2Repository,
    BackupStatus,
    LocalRepository,
    Restic,
    ResticError,
    ResticFailure,
    RetentionPolicy,
    S3Repository,
    classify,
    scrub,
    verify_restored,
)

pytestmark = pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed")

PASSWORD = "correct horse battery staple 7f3a"

# --------------------------------------------------------------------------- trees


def make_tree(root: Path) -> Path:
    """Text, random bytes, empty files, a symlink, a unicode name, nested directories."""
    (root / "docs" / "deep" / "deeper").mkdir(parents=True)
    (root / "docs" / "note.txt").write_text("shopping list\nmilk\n" * 50)
    (root / "docs" / "deep" / "deeper" / "leaf.txt").write_text("leaf")
    (root / "photos").mkdir()
    (root / "photos" / "Фото ünï 📷.bin").write_bytes(os.urandom(300_000))
    (root / "photos" / "-looks-like-a-flag").write_bytes(os.urandom(1000))
    (root / "empty.dat").write_bytes(b"")
    (root / "empty-dir").mkdir()
    (root / "latest-note").symlink_to("docs/note.txt")
    return root


def make_big_tree(root: Path, megabytes: int) -> Path:
    root.mkdir(parents=True)
    for i in range(megabytes // 4):
        (root / f"chunk-{i:03}.bin").write_bytes(os.urandom(4 << 20))
    return root


def assert_same_tree(original: Path, restored: Path) -> None:
    def entries(root: Path) -> dict[str, tuple[str, bytes | str | None]]:
        found = {}
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                rel = str(path.relative_to(root))
                if path.is_symlink():
                    found[rel] = ("symlink", os.readlink(path))
                elif path.is_dir():
                    found[rel] = ("dir", None)
                else:
                    found[rel] = ("file", path.read_bytes())
        return found

    want, got = entries(original), entries(restored)
    assert sorted(got) == sorted(want)
    for rel, value in want.items():
        assert got[rel] == value, rel


def restored_copy(target: Path, source: Path) -> Path:
    """restic restores a path under target/<absolute source path>."""
    return target / str(source).lstrip("/")


# --------------------------------------------------------------------------- repositories


@pytest.fixture(scope="module")
async def template_repo(tmp_path_factory) -> Path:
    """One initialized repository, copied for each test: `init` costs seconds (key derivation)."""
    path = tmp_path_factory.mktemp("template") / "repo"
    restic = Restic(LocalRepository(path=path), PASSWORD, cache_dir=path.parent / "cache")
    assert await restic.init() is True
    cheapen_key(path, PASSWORD)
    return path


def cheapen_key(repo: Path, password: str) -> None:
    """Re-wrap the repository's master key with cheap scrypt parameters.

    restic calibrates scrypt to ~0.5 s at init and pays it on every command; restic's own test
    suite lowers it the same way (TestUseLowSecurityKDFParameters). Key file format: restic's
    design doc, "Keys, Encryption and MAC" (AES-256-CTR, Poly1305-AES over the ciphertext).
    """
    [key_file] = (repo / "keys").iterdir()
    params = json.loads(key_file.read_text())
    master_key = _open_sealed(params, password)
    cheap = dict(params, N=1024, r=8, p=1, salt=base64.b64encode(os.urandom(64)).decode())
    cheap["data"] = _seal(cheap, password, master_key)
    content = json.dumps(cheap).encode()
    key_file.unlink()
    (repo / "keys" / hashlib.sha256(content).hexdigest()).write_bytes(content)


def _user_keys(params: dict, password: str) -> tuple[bytes, bytes, bytes]:
    derived = hashlib.scrypt(password.encode(), salt=base64.b64decode(params["salt"]), n=params["N"],
                             r=params["r"], p=params["p"], maxmem=1 << 30, dklen=64)
    return derived[:32], derived[32:48], derived[48:]  # encryption key, MAC k, MAC r


def _mac(mac_k: bytes, mac_r: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    aes = Cipher(algorithms.AES(mac_k), modes.ECB()).encryptor()
    return Poly1305.generate_tag(mac_r + aes.update(nonce) + aes.finalize(), ciphertext)


def _open_sealed(params: dict, password: str) -> bytes:
    enc_key, mac_k, mac_r = _user_keys(params, password)
    blob = base64.b64decode(params["data"])
    nonce, ciphertext, tag = blob[:16], blob[16:-16], blob[-16:]
    assert _mac(mac_k, mac_r, nonce, ciphertext) == tag
    aes = Cipher(algorithms.AES(enc_key), modes.CTR(nonce)).decryptor()
    return aes.update(ciphertext) + aes.finalize()


def _seal(params: dict, password: str, plaintext: bytes) -> str:
    enc_key, mac_k, mac_r = _user_keys(params, password)
    nonce = os.urandom(16)
    aes = Cipher(algorithms.AES(enc_key), modes.CTR(nonce)).encryptor()
    ciphertext = aes.update(plaintext) + aes.finalize()
    return base64.b64encode(nonce + ciphertext + _mac(mac_k, mac_r, nonce, ciphertext)).decode()


@pytest.fixture
def restic(template_repo, tmp_path) -> Restic:
    repo = tmp_path / "repo"
    shutil.copytree(template_repo, repo)
    return Restic(LocalRepository(path=repo), PASSWORD, cache_dir=tmp_path / "cache")


def restic_children() -> list[int]:
    """Pids of restic processes started by this test process."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            name = fields[0].split("(", 1)[1]
            ppid = int(fields[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if name == "restic" and ppid == os.getpid():
            pids.append(int(stat.parent.name))
    return pids


def kill_restic() -> None:
    for pid in restic_children():
        os.killpg(pid, signal.SIGKILL)  # proc.run starts each restic as a group leader


# --------------------------------------------------------------------------- local round trip


async def test_init_is_idempotent_and_checks_the_password(template_repo, tmp_path):
    repo = LocalRepository(path=template_repo)
    assert await Restic(repo, PASSWORD, cache_dir=tmp_path).init() is False
    with pytest.raises(ResticError) as caught:
        await Restic(repo, "not the password", cache_dir=tmp_path).init()
    assert caught.value.kind is ResticFailure.WRONG_PASSWORD


async def test_local_round_trip_restores_byte_for_byte(restic, tmp_path):
    source = make_tree(tmp_path / "source")
    statuses: list[BackupStatus] = []

    summary = await restic.backup([source], tags=["service:files"], host="testhost", progress=statuses.append)

    assert summary.snapshot_id
    assert summary.files_new == 5 and summary.files_changed == 0
    assert summary.total_bytes_processed == sum(
        p.stat().st_size for p in source.rglob("*") if p.is_file() and not p.is_symlink())
    assert summary.data_added > 0 and not summary.incomplete
    assert all(isinstance(s, BackupStatus) for s in statuses)

    [snapshot] = await restic.snapshots()
    assert snapshot.short_id == summary.snapshot_id[:8]
    assert snapshot.paths == [str(source)] and snapshot.hostname == "testhost"
    assert snapshot.tags == ["service:files"]

    listing = await restic.ls(snapshot.id)
    assert (listing.files, listing.symlinks) == (5, 1)
    assert listing.dirs >= 6  # the tree's 5 plus the parents of its absolute path
    assert listing.total_size == summary.total_bytes_processed

    target = tmp_path / "restore"
    await restic.restore(snapshot.id, target)
    assert_same_tree(source, restored_copy(target, source))
    assert verify_restored(listing, target).ok

    again = await restic.backup([source], tags=["service:files"], host="testhost")
    assert again.files_unmodified == 5 and again.data_added < 2000


async def test_progress_callback_may_be_async_and_may_fail(restic, tmp_path):
    source = make_tree(tmp_path / "source")
    restic.progress_fps = 60
    calls = []

    async def broken_display(status: BackupStatus) -> None:
        calls.append(status)
        raise RuntimeError("the chat message could not be edited")

    summary = await restic.backup([source], progress=broken_display)

    assert calls and summary.snapshot_id and not summary.incomplete


async def test_backup_reports_a_missing_path_as_a_warning(restic, tmp_path):
    source = make_tree(tmp_path / "source")
    missing = tmp_path / "gone"

    summary = await restic.backup([source, missing])

    # restic 0.14 skips it with exit code 0: only the warning tells.
    assert summary.snapshot_id and summary.files_new == 5
    assert any(str(missing) in w for w in summary.warnings)


async def test_restore_of_included_paths_only(restic, tmp_path):
    source = make_tree(tmp_path / "source")
    summary = await restic.backup([source])
    target = tmp_path / "restore"
    wanted = source / "photos"

    await restic.restore(summary.snapshot_id, target, include=[str(wanted)])

    assert_same_tree(wanted, restored_copy(target, wanted))
    assert not restored_copy(target, source / "docs").exists()
    partial = await restic.ls(summary.snapshot_id, paths=[str(wanted)])
    assert partial.files == 2 and verify_restored(partial, target).ok


async def test_verify_restored_notices_missing_and_changed_files(restic, tmp_path):
    source = make_tree(tmp_path / "source")
    summary = await restic.backup([source])
    target = tmp_path / "restore"
    await restic.restore(summary.snapshot_id, target)
    listing = await restic.ls(summary.snapshot_id)
    copy = restored_copy(target, source)
    (copy / "docs" / "note.txt").unlink()
    (copy / "empty.dat").write_bytes(b"x")

    check = verify_restored(listing, target)

    assert not check.ok
    assert check.missing == [f"{source}/docs/note.txt"]
    assert check.wrong_size == [f"{source}/empty.dat"]


async def test_snapshots_filter_by_tags(restic, tmp_path):
    source = make_tree(tmp_path / "source")
    await asyncio.gather(
        restic.backup([source], tags=["service:mail", "reason:auto"]),
        restic.backup([source], tags=["service:mail", "reason:manual"]),
        restic.backup([source], tags=["service:git", "reason:auto"]),
    )

    def tagsets(snapshots):
        return sorted(tuple(sorted(s.tags)) for s in snapshots)

    assert len(await restic.snapshots()) == 3
    assert tagsets(await restic.snapshots(tags=["reason:auto"])) == [
        ("reason:auto", "service:git"), ("reason:auto", "service:mail")]
    assert tagsets(await restic.snapshots(tags=["service:mail", "reason:auto"])) == [
        ("reason:auto", "service:mail")]
    assert await restic.snapshots(tags=["service:nothing"]) == []
    with pytest.raises(ValueError):
        await restic.snapshots(tags=["a,b"])


async def test_stats_give_a_dedup_ratio(restic, tmp_path):
    source = make_tree(tmp_path / "source")
    await restic.backup([source])
    await restic.backup([source])

    report = await restic.dedup_report()

    assert report.restore_size >= 2 * 300_000
    assert 0 < report.stored_size < report.restore_size
    assert report.ratio > 1.8, report


# --------------------------------------------------------------------------- retention

AUTO_TIMES = {
    "jan01-10h": datetime(2024, 1, 1, 10, 0),
    "jan01-12h": datetime(2024, 1, 1, 12, 0),
    "jan02": datetime(2024, 1, 2, 9, 0),
    "jan03": datetime(2024, 1, 3, 9, 0),
    "jan10": datetime(2024, 1, 10, 9, 0),
    "feb15": datetime(2024, 2, 15, 9, 0),
}
MANUAL_TIMES = {"manual-2023": datetime(2023, 6, 1, 9, 0), "manual-jan01": datetime(2024, 1, 1, 11, 0)}


async def backup_at_times(restic: Restic, source: Path, times: dict[str, datetime], tag: str) -> dict[str, str]:
    summaries = await asyncio.gather(*(
        restic.backup([source], tags=["service:files", tag], host="testhost", time=t) for t in times.values()))
    return {label: s.snapshot_id[:8] for label, s in zip(times, summaries)}  # newer restic: full id


async def test_forget_keeps_exactly_what_the_policy_says_and_only_touches_tagged(restic, tmp_path):
    source = make_tree(tmp_path / "source")
    auto = await backup_at_times(restic, source, AUTO_TIMES, "reason:auto")
    manual = await backup_at_times(restic, source, MANUAL_TIMES, "reason:manual")
    policy = RetentionPolicy(keep_last=1, keep_daily=3, keep_monthly=2)

    result = await restic.forget(policy, tags=["reason:auto"])

    # last: feb15; daily: feb15, jan10, jan03; monthly: feb15 (Feb), jan10 (Jan)
    kept = {auto[k] for k in ("feb15", "jan10", "jan03")}
    removed = {auto[k] for k in ("jan02", "jan01-12h", "jan01-10h")}
    assert {s.short_id for s in result.kept} == kept
    assert {s.short_id for s in result.removed} == removed
    assert result.pruned
    remaining = await restic.snapshots()
    assert {s.short_id for s in remaining} == kept | set(manual.values())
    await restic.check()


async def test_forget_dry_run_removes_nothing(restic, tmp_path):
    source = make_tree(tmp_path / "source")
    auto = await backup_at_times(restic, source, {k: AUTO_TIMES[k] for k in ("jan02", "jan03")}, "reason:auto")

    result = await restic.forget(RetentionPolicy(keep_last=1), tags=["reason:auto"], dry_run=True)

    assert [s.short_id for s in result.removed] == [auto["jan02"]]
    assert len(await restic.snapshots()) == 2


def test_retention_policy_needs_a_rule():
    with pytest.raises(ValueError):
        RetentionPolicy()
    assert RetentionPolicy(keep_daily=7, keep_weekly=4).flags() == ["--keep-daily=7", "--keep-weekly=4"]


# --------------------------------------------------------------------------- crashes and locks


async def test_backup_killed_midway_then_recovery_and_check(restic, tmp_path):
    source = make_big_tree(tmp_path / "big", megabytes=64)
    restic.progress_fps = 30
    seen: list[BackupStatus] = []

    def kill_once_data_flows(status: BackupStatus) -> None:
        seen.append(status)      # restic's total grows while it scans: a loaded machine scans late
        if status.bytes_done > 0 and status.total_bytes == 64 << 20 and len(restic_children()) > 0:
            kill_restic()

    with pytest.raises(ResticError) as killed:
        await restic.backup([source], progress=kill_once_data_flows)
    assert killed.value.kind is ResticFailure.KILLED and "SIGKILL" in str(killed.value)
    assert seen[-1].total_bytes == 64 << 20 and 0 < seen[-1].percent_done < 1

    # The killed process left its lock behind: an exclusive operation is refused...
    with pytest.raises(ResticError) as locked:
        await restic.check()
    assert locked.value.kind is ResticFailure.LOCKED and "unlock" in str(locked.value)

    # ...and the recovering calls get through.
    unlocked: list[ResticError] = []
    summary = await restic.backup_with_stale_lock_recovery([source], on_unlock=unlocked.append)
    assert summary.snapshot_id and summary.total_bytes_processed == 64 << 20
    result = await restic.with_stale_lock_recovery(restic.check, on_unlock=unlocked.append)
    assert result.ok and "no errors were found" in result.output
    assert [e.kind for e in unlocked] == [ResticFailure.LOCKED]
    assert len(await restic.snapshots()) == 1


async def test_backup_blocked_by_stale_exclusive_lock_unlocks_and_retries(restic, tmp_path):
    source = make_tree(tmp_path / "source")
    await restic.backup([source])
    locks = Path(restic.repository.location()) / "locks"

    def lock_written() -> bool:
        # The local backend writes "<id>-tmp-<n>" and renames it once complete.
        return any("-tmp-" not in p.name for p in locks.iterdir())

    # `check` holds the exclusive lock; restic 0.14 waits 200 ms after taking it: kill it there.
    checking = asyncio.create_task(restic.check())
    deadline = time.monotonic() + 10
    while not lock_written() and time.monotonic() < deadline:
        await asyncio.sleep(0.002)
    kill_restic()
    with pytest.raises(ResticError) as killed:
        await checking
    assert killed.value.kind is ResticFailure.KILLED

    with pytest.raises(ResticError) as blocked:
        await restic.backup([source])
    assert blocked.value.kind is ResticFailure.LOCKED
    assert len(await restic.snapshots()) == 1           # a listing takes no lock: the lock does not block it

    unlocked: list[ResticError] = []
    summary = await restic.backup_with_stale_lock_recovery([source], on_unlock=unlocked.append)
    assert summary.files_unmodified == 5
    assert len(unlocked) == 1 and not any(locks.iterdir())


# --------------------------------------------------------------------------- errors


async def test_wrong_password_is_named_and_not_shown(template_repo, tmp_path):
    wrong = "hunter2-wrong-password-5e1"
    restic = Restic(LocalRepository(path=template_repo), wrong, cache_dir=tmp_path)

    with pytest.raises(ResticError) as caught:
        await restic.snapshots()

    assert caught.value.kind is ResticFailure.WRONG_PASSWORD
    message = str(caught.value)
    assert message.startswith("restic snapshots failed: wrong repository password")
    assert wrong not in message and PASSWORD not in message


async def test_missing_repository_message_is_scrubbed_of_secrets(tmp_path):
    # restic echoes the location; here it holds the password, which must not come back.
    path = tmp_path / f"nothing-{PASSWORD}"
    restic = Restic(LocalRepository(path=path), PASSWORD, cache_dir=tmp_path)

    with pytest.raises(ResticError) as caught:
        await restic.snapshots()

    assert caught.value.kind is ResticFailure.NO_REPOSITORY
    assert PASSWORD not in str(caught.value) and "nothing-***" in str(caught.value)


async def test_password_reaches_restic_only_through_an_inherited_pipe(restic, tmp_path, monkeypatch):
    # restic is started through a script that writes down what the started program gets, then
    # becomes restic (exec: same process, same environment and file descriptors).
    monkeypatch.setenv("AWS_CA_BUNDLE", "/nonexistent/ca.pem")
    monkeypatch.setenv("RESTIC_PASSWORD", "leaked")
    spy = tmp_path / "spy"
    spy.mkdir()
    wrapper = tmp_path / "restic-spy"
    wrapper.write_text(f"""#!/bin/sh
tr '\\0' '\\n' < /proc/$$/environ > {spy}/environ
printf '%s\\n' "$@" > {spy}/argv
for fd in /proc/$$/fd/*; do echo "${{fd##*/}} $(readlink "$fd")"; done > {spy}/fds
exec {shutil.which("restic")} "$@"
""")
    wrapper.chmod(0o700)
    restic.binary = str(wrapper)
    open_before = len(os.listdir("/proc/self/fd"))

    assert await restic.snapshots() == []

    environ = dict(line.split("=", 1) for line in (spy / "environ").read_text().splitlines())
    number = environ["RESTIC_PASSWORD_FILE"].removeprefix("/dev/fd/")
    fds = dict(line.split(" ", 1) for line in (spy / "fds").read_text().splitlines())
    assert fds[number].startswith("pipe:"), fds
    assert "AWS_CA_BUNDLE" not in environ and "RESTIC_PASSWORD" not in environ
    assert PASSWORD not in (spy / "environ").read_text() and PASSWORD not in (spy / "argv").read_text()
    assert len(os.listdir("/proc/self/fd")) == open_before   # the bot closed its ends of the pipe


async def test_timeout_ends_restic_and_says_so(tmp_path):
    # A listener that never answers: restic waits on the network until the timeout ends it.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        repo = S3Repository(endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}", bucket="silent",
                            access_key_id="id", secret_access_key="s3-secret-value")
        started = time.monotonic()
        with pytest.raises(ResticError) as caught:
            await Restic(repo, PASSWORD, cache_dir=tmp_path).snapshots(timeout=1.5)
    assert time.monotonic() - started < 8
    assert caught.value.kind in (ResticFailure.TIMEOUT, ResticFailure.UNREACHABLE)
    assert "restic snapshots failed" in str(caught.value) and "s3-secret-value" not in str(caught.value)


def _result(stderr: str, returncode: int = 1, timed_out: bool = False) -> ProcResult:
    return ProcResult(argv=["restic"], returncode=returncode, stdout="", stderr=stderr, duration=1.0,
                      timed_out=timed_out)


@pytest.mark.parametrize("stderr, kind", [
    ("Fatal: unable to create lock in backend: repository is already locked exclusively by PID 11 on vm "
     "by root (UID 0, GID 0)\nlock was created at 2024-01-01 10:00:00 (5m0s ago)\nstorage ID 0123abcd\n"
     "the `unlock` command can be used to remove stale locks", ResticFailure.LOCKED),
    ("Fatal: wrong password or no key found", ResticFailure.WRONG_PASSWORD),
    ("Fatal: unable to save snapshot: open /repo/data/ab/abcd: no space left on device",
     ResticFailure.NO_SPACE),
    ('Fatal: unable to open config file: Stat: Get "http://127.0.0.1:9/b/?location=": dial tcp '
     "127.0.0.1:9: connect: connection refused\nIs there a repository at the following location?",
     ResticFailure.UNREACHABLE),
    ("Fatal: unable to open config file: Stat: The specified bucket does not exist\n"
     "Is there a repository at the following location?", ResticFailure.NO_REPOSITORY),
    ("Fatal: repository contains errors", ResticFailure.DAMAGED),
    ("Fatal: something new", ResticFailure.FAILED),
])
def test_classify_restic_messages(stderr, kind):
    """Messages as restic 0.14 prints them (no-space cannot be produced here without a tiny mount)."""
    assert classify(_result(stderr)) is kind


def test_scrub_hides_secrets_and_keeps_short_ones_from_eating_words():
    assert scrub("key K005abcdefgh in /x/K005abcdefgh.txt", ["K005abcdefgh"]) == "key *** in /x/***.txt"
    assert scrub("wrong password or no key found (pw b)", ["pw", "b", "wrong"]) == \
        "*** password or no key found (*** ***)"


def test_classify_exit_codes_of_newer_restic():
    assert classify(_result("Fatal: ...", returncode=12)) is ResticFailure.WRONG_PASSWORD
    assert classify(_result("Fatal: ...", returncode=10)) is ResticFailure.NO_REPOSITORY
    assert classify(_result("", returncode=-9)) is ResticFailure.KILLED
    assert classify(_result("", returncode=-1, timed_out=True)) is ResticFailure.TIMEOUT


async def test_bad_input_never_becomes_a_flag():
    restic = Restic(LocalRepository(path=Path("/nonexistent")), PASSWORD)
    with pytest.raises(ValueError):
        await restic.restore("--help", "/tmp/x")
    with pytest.raises(ValueError):
        await restic.ls("-r")
    with pytest.raises(ValueError):
        await restic.backup(["relative/path"])
    with pytest.raises(ValueError):
        await restic.backup(["/srv"], tags=["--host=evil,x"])


# --------------------------------------------------------------------------- S3 (moto)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/spbot-backups", method="PUT"), timeout=10)
    yield endpoint
    server.stop()


async def test_s3_round_trip(s3_endpoint, tmp_path):
    repo = S3Repository(endpoint=s3_endpoint, bucket="spbot-backups", prefix="vps1/restic",
                        access_key_id="spbot-test-id", secret_access_key="spbot-test-secret")
    assert repo.location() == f"s3:{s3_endpoint}/spbot-backups/vps1/restic"
    restic = Restic(repo, PASSWORD, cache_dir=tmp_path / "cache")
    source = make_tree(tmp_path / "source")

    assert await restic.init() is True
    assert await restic.init() is False
    summary = await restic.backup([source], tags=["service:files"])
    [snapshot] = await restic.snapshots(tags=["service:files"])
    assert snapshot.short_id == summary.snapshot_id[:8]
    target = tmp_path / "restore"
    await restic.restore(snapshot.id, target)
    assert_same_tree(source, restored_copy(target, source))
    assert verify_restored(await restic.ls(snapshot.id), target).ok
    assert (await restic.check()).ok


async def test_b2_repository_goes_through_the_s3_api(s3_endpoint, tmp_path):
    """A B2 repository is opened by restic's S3 backend (an S3 server on loopback stands in for B2's
    S3-compatible endpoint; no B2 emulator exists)."""
    repo = B2Repository(bucket="spbot-backups", prefix="b2-vps", key_id="spbot-test-id", key="spbot-test-secret",
                        endpoint=s3_endpoint)
    restic = Restic(repo, PASSWORD, cache_dir=tmp_path / "cache")
    assert await restic.init() is True
    summary = await restic.backup([make_tree(tmp_path / "source")], tags=["service:files"])
    [snapshot] = await restic.snapshots()
    assert snapshot.short_id == summary.snapshot_id[:8]


async def test_s3_missing_prefix_is_no_repository(s3_endpoint, tmp_path):
    repo = S3Repository(endpoint=s3_endpoint, bucket="spbot-backups", prefix="never-initialized",
                        access_key_id="spbot-test-id", secret_access_key="spbot-test-secret")
    with pytest.raises(ResticError) as caught:
        await Restic(repo, PASSWORD, cache_dir=tmp_path).snapshots()
    assert caught.value.kind is ResticFailure.NO_REPOSITORY


async def test_unreachable_s3_endpoint_fails_clearly_within_the_timeout(tmp_path):
    repo = S3Repository(endpoint=f"http://127.0.0.1:{free_port()}", bucket="spbot-backups",
                        access_key_id="spbot-test-id", secret_access_key="spbot-unreachable-secret")
    started = time.monotonic()

    with pytest.raises(ResticError) as caught:
        await Restic(repo, PASSWORD, cache_dir=tmp_path).snapshots(timeout=20)

    assert time.monotonic() - started < 20
    assert caught.value.kind is ResticFailure.UNREACHABLE
    message = str(caught.value)
    assert "cannot be reached" in message and "connection refused" in message
    assert "spbot-unreachable-secret" not in message


# --------------------------------------------------------------------------- repository descriptions


def test_repository_locations_and_credentials_environment(tmp_path):
    b2 = B2Repository(bucket="family-backups-3f9a", prefix="/vps1/", key_id="0051234", key="K005secret",
                      endpoint="https://s3.eu-central-003.backblazeb2.com")
    s3 = S3Repository(endpoint="https://s3.eu-central-003.backblazeb2.com/", bucket="family", prefix="",
                      access_key_id="id", secret_access_key="s3secret", region="eu-central-003")
    # B2 through its S3-compatible API, as restic's documentation recommends
    assert b2.location() == "s3:https://s3.eu-central-003.backblazeb2.com/family-backups-3f9a/vps1"
    assert s3.location() == "s3:https://s3.eu-central-003.backblazeb2.com/family"
    assert "K005secret" not in repr(b2) and "s3secret" not in repr(s3)

    env = Restic(b2, PASSWORD, cache_dir=tmp_path)._env(tmp_path / "pw")
    assert env["AWS_ACCESS_KEY_ID"] == "0051234" and env["AWS_SECRET_ACCESS_KEY"] == "K005secret"
    assert env["AWS_DEFAULT_REGION"] == "eu-central-003"
    assert env["RESTIC_REPOSITORY"] == b2.location()
    assert not any(k.startswith("B2_") for k in env)
    assert set(env) <= {"PATH", "HOME", "LANG", "TMPDIR", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                        "AWS_DEFAULT_REGION", "RESTIC_REPOSITORY", "RESTIC_PASSWORD_FILE",
                        "RESTIC_PROGRESS_FPS", "RESTIC_CACHE_DIR"}
    with pytest.raises(ValueError):
        S3Repository(endpoint="ftp://x", bucket="family", access_key_id="i", secret_access_key="s")


async def test_a_password_too_long_for_the_pipe_is_a_clear_error(tmp_path):
    restic = Restic(LocalRepository(path=tmp_path / "repo"), "p" * 5000, cache_dir=tmp_path / "cache")
    with pytest.raises(ResticError) as caught:
        await restic.snapshots()
    assert "the repository password is too long (at most 4095 bytes)" in str(caught.value)
    assert "ppp" not in str(caught.value)


async def test_password_pipe_works_when_the_bot_runs_with_stdin_closed(restic, tmp_path):
    # A supervisor may start the bot with fd 0 closed: the pipe then gets fd 0, which would be
    # replaced by restic's /dev/null stdin and restic would read an empty password.
    code = f"""
import asyncio, os
from pathlib import Path
from spbot.system.restic import LocalRepository, Restic

async def main():
    os.close(0)
    restic = Restic(LocalRepository(path=Path({str(restic.repository.path)!r})), {PASSWORD!r},
                    cache_dir=Path({str(tmp_path / "cache2")!r}))
    print("snapshots:", len(await restic.snapshots()))
asyncio.run(main())
"""
    result = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", code], capture_output=True,
                                     text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0 and "snapshots: 0" in result.stdout, result.stderr[-2000:]


# --------------------------------------------------------------------------- error lines across versions

# Captured from Debian's restic 0.14.0 (backup --json of a file the user cannot read) and, for 0.18, the
# shape of internal/ui/backup/json.go's ErrorUpdate{Error: ErrorObject{Message}} in restic 0.18.
ERROR_LINE_0_14 = ('{"message_type":"error","error":{"Op":"open","Path":"/srv/x/secret.db","Err":13},'
                   '"during":"archival","item":"/srv/x/secret.db"}')
ERROR_LINE_0_18 = ('{"message_type":"error","error":{"message":"open /srv/x/secret.db: permission denied"},'
                   '"during":"archival","item":"/srv/x/secret.db"}')
ERROR_LINE_EMPTY = '{"message_type":"error","error":{},"during":"scan","item":"/srv/x/odd"}'


def test_backup_error_lines_of_every_version_are_said_in_words():
    from spbot.system.restic import _readable
    assert _readable(ERROR_LINE_0_14) == "could not read /srv/x/secret.db: permission denied"
    assert _readable(ERROR_LINE_0_18) == "could not read /srv/x/secret.db: permission denied"
    assert _readable(ERROR_LINE_EMPTY) == "could not read /srv/x/odd (while scan); restic gave no reason"
    assert _readable('{"message_type":"error","error":{"Op":"lstat","Path":"/srv/y","Err":2},'
                     '"during":"archival","item":"/srv/y"}') == "could not read /srv/y: no such file or directory"


def test_exit_code_130_is_an_interruption():
    failure = classify(_result("", returncode=130))
    assert failure is ResticFailure.INTERRUPTED
    from spbot.system.restic import error_from_result
    message = str(error_from_result("backup", _result("signal interrupt received, cleaning up", 130), []))
    assert message.startswith("restic backup failed: restic was interrupted (exit code 130")


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root and setpriv")
async def test_unreadable_file_is_reported_in_words_by_the_real_restic(template_repo):
    """restic runs as nobody (a wrapper), so a 0600 root file is really unreadable: exit 3, a snapshot,
    and the warning in words rather than restic's raw JSON line."""
    import tempfile
    with tempfile.TemporaryDirectory(dir="/tmp") as where:
        await _back_up_an_unreadable_file(template_repo, Path(where))


async def _back_up_an_unreadable_file(template_repo: Path, tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    repo = tmp_path / "repo"
    shutil.copytree(template_repo, repo)
    source = make_tree(tmp_path / "source")
    secret = source / "docs" / "secret.db"
    secret.write_text("only root may read this")
    secret.chmod(0o600)
    for path in [tmp_path, repo, *repo.rglob("*"), *source.rglob("*")]:
        if path != secret and not path.is_symlink():
            path.chmod(0o777 if path.is_dir() else 0o666)
    wrapper = tmp_path / "restic-as-nobody"
    wrapper.write_text('#!/bin/sh\nif [ -n "$RESTIC_PASSWORD_FILE" ]; then RESTIC_PASSWORD="$(cat "$RESTIC_PASSWORD_FILE")"; '
                       'export RESTIC_PASSWORD; unset RESTIC_PASSWORD_FILE; fi\n'
                       f'exec setpriv --reuid=65534 --regid=65534 --clear-groups {shutil.which("restic")} '
                       '--no-cache "$@"\n')
    wrapper.chmod(0o755)
    restic = Restic(LocalRepository(path=repo), PASSWORD, binary=str(wrapper), cache_dir=tmp_path / "cache")

    summary = await restic.backup([source])

    assert summary.incomplete and summary.snapshot_id
    assert f"could not read {secret}: permission denied" in summary.warnings
    assert not any(w.startswith("{") for w in summary.warnings)


async def test_a_write_limit_holds_a_backup_to_its_rate(restic, tmp_path):
    """[backup] write_limit reaches restic: 3 MiB that does not compress, at 1 MiB/s, cannot be written in
    under two seconds (restic's own limiter on what it writes to the repository)."""
    data = tmp_path / "incompressible"
    data.mkdir()
    (data / "noise.bin").write_bytes(os.urandom(3 << 20))
    restic.write_limit_kib = 1024
    started = time.monotonic()
    summary = await restic.backup([data], tags=["service:limited"])
    assert summary.data_added >= 3 << 20
    assert time.monotonic() - started >= 2.0
