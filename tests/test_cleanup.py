"""Clean-up steps against real temporary trees, with journalctl, nix-collect-garbage and apt-get
replaced by recording executables that print the real tools' output formats."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from pydantic import ValidationError

from spbot.system import cleanup
from spbot.system.cleanup import (AptCache, CleanupParams, JournalVacuum, NixGarbage, OldRoot,
                                  RotatedLogs, dry_run, parse_size, run_all, steps)
from spbot.system.filetree import remove_tree
from tests.fakebin import FakeBin, Rule

KiB, MiB, GiB = 1024, 1024 ** 2, 1024 ** 3
MACHINE = "8f2c1d0e5b6a4c3d9e8f7a6b5c4d3e2f"
JOURNAL = f"/var/log/journal/{MACHINE}"

# journalctl (systemd 252) prints --disk-usage on stdout and the vacuum log on stderr
DISK_USAGE = "Archived and active journals take up 1.5G in the file system.\n"
VACUUM = (
    "Vacuuming done, freed 0B of archived journals from /var/log/journal.\n"
    "Vacuuming done, freed 0B of archived journals from /run/log/journal.\n"
    f"Deleted archived journal {JOURNAL}/system@2c0b9d6cbd0b4ff5a0f1d3b6c5a4e3f2-0000000000000001-"
    "0005f1a2b3c4d5e6.journal (56.0M).\n"
    f"Deleted archived journal {JOURNAL}/user-1000@2c0b9d6cbd0b4ff5a0f1d3b6c5a4e3f2-00000000000003e8-"
    "0005f1a2b3c4d5e7.journal (8.0M).\n"
    f"Vacuuming done, freed 64.0M of archived journals from {JOURNAL}.\n"
)
# nix-collect-garbage: progress on stderr, the summary on stdout
NIX_GC_LOG = (
    "removing old generations of profile /nix/var/nix/profiles/system\n"
    "removing profile version 41\n"
    "removing profile version 42\n"
    "finding garbage collector roots...\n"
    "deleting garbage...\n"
    "deleting '/nix/store/0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p-nginx-1.24.0'\n"
    "deleting unused links...\n"
    "note: currently hard linking saves -0.00 MiB\n"
)
NIX_DRY_RUN = ("removing old generations of profile /nix/var/nix/profiles/system\n"
               "would remove profile version 41\n"
               "would remove profile version 42\n")


def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(os.urandom(size))
    return path


@pytest.fixture
def bins(tmp_path):
    return FakeBin(tmp_path)


def quiet_tmpfs() -> str | None:
    """/dev/shm when it is a tmpfs: nobody else writes there, so free-space deltas are exact."""
    mounts = {p.mountpoint: p.fstype for p in psutil.disk_partitions(all=True)}
    return "/dev/shm" if mounts.get("/dev/shm") == "tmpfs" and os.access("/dev/shm", os.W_OK) else None


QUIET = quiet_tmpfs()


def assert_freed(measured: int, expected: int) -> None:
    """Measured free space grew by what was removed (exact on a quiet tmpfs; noisy on / )."""
    if QUIET:
        assert expected <= measured <= expected + 256 * KiB
    else:
        assert measured >= 0


@pytest.fixture
def machine(tmp_path):
    """A machine's worth of paths; markers for NixOS and Debian absent."""
    base = Path(tempfile.mkdtemp(prefix="spbot-test-", dir=QUIET)) if QUIET else tmp_path
    root = base / "machine"
    for sub in ("etc", "nix/store", "var/log/journal", "var/log/nginx", "var/cache/apt/archives/partial"):
        (root / sub).mkdir(parents=True)
    yield root
    if base != tmp_path:
        shutil.rmtree(base)


def params_for(machine: Path, bins: FakeBin, **overrides) -> CleanupParams:
    values = dict(
        tool_path=str(bins.dir),            # only the recording executables can be found
        nix_marker=machine / "etc/NIXOS", nix_store=machine / "nix/store",
        journal_dir=machine / "var/log/journal",
        log_dirs=[machine / "var/log/nginx"],
        debian_marker=machine / "etc/debian_version",
        apt_archives=machine / "var/cache/apt/archives",
        old_root=machine / "old-root",
    )
    return CleanupParams(**{**values, **overrides})


# --------------------------------------------------------------------------- detection

def test_only_applicable_steps_are_offered(machine, bins):
    params = params_for(machine, bins)
    assert [s.name for s in steps(params)] == ["logs"]        # no tools, no markers, no old root

    bins.add("journalctl", [])
    bins.add("nix-collect-garbage", [])
    bins.add("apt-get", [])
    (machine / "etc/NIXOS").write_text("")
    (machine / "etc/debian_version").write_text("12.8\n")
    (machine / "old-root").mkdir()
    assert [s.name for s in steps(params)] == ["nix", "journal", "logs", "apt", "old-root"]
    assert [s.name for s in steps(params.model_copy(update={"enabled": ["journal", "apt"]}))] == \
        ["journal", "apt"]
    assert bins.calls() == []                                  # detecting runs nothing


def test_params_refuse_dangerous_values(machine, bins):
    with pytest.raises(ValidationError):
        params_for(machine, bins, old_root=Path("/"))
    with pytest.raises(ValidationError):
        params_for(machine, bins, log_dirs=[Path("/")])
    with pytest.raises(ValidationError):
        params_for(machine, bins, log_dirs=[Path("relative/logs")])
    with pytest.raises(ValidationError):
        params_for(machine, bins, journal_vacuum_size="--rotate")
    with pytest.raises(ValidationError):
        params_for(machine, bins, nix_delete_older_than="7d; rm -rf /")


@pytest.mark.parametrize("text, expected", [
    ("0B", 0), ("512B", 512), ("8.0M", 8 * MiB), ("1.5G", int(1.5 * GiB)), ("64.0M", 64 * MiB),
    ("11.6 GiB", round(11.6 * GiB)), ("2345.67 MiB", round(2345.67 * MiB)), ("0.0 KiB", 0),
    ("200M", 200 * MiB), ("1T", 1024 ** 4),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_parse_size_rejects_garbage():
    with pytest.raises(ValueError):
        parse_size("lots")


# --------------------------------------------------------------------------- journal

async def test_journal_estimate_parses_disk_usage(machine, bins):
    bins.add("journalctl", [Rule(match=["--disk-usage"], stdout=DISK_USAGE)])
    estimate = await JournalVacuum(params_for(machine, bins)).estimate()
    assert estimate.error is None
    assert estimate.bytes == int(1.5 * GiB) - 200 * MiB        # all but the size kept
    assert not estimate.exact
    assert "1.5 GiB" in estimate.detail and "200M" in estimate.detail and "7d" in estimate.detail
    assert [c.argv for c in bins.calls("journalctl")] == [["--disk-usage"]]


async def test_journal_estimate_with_time_limit_only_is_an_upper_bound(machine, bins):
    bins.add("journalctl", [Rule(match=["--disk-usage"], stdout=DISK_USAGE)])
    params = params_for(machine, bins, journal_vacuum_size=None, journal_vacuum_time="1s")
    estimate = await JournalVacuum(params).estimate()
    assert estimate.bytes == int(1.5 * GiB)


async def test_journal_run_vacuums_and_reports(machine, bins):
    bins.add("journalctl", [Rule(match=["--vacuum-time=7d", "--vacuum-size=200M"], stderr=VACUUM)])
    result = await JournalVacuum(params_for(machine, bins)).run()
    assert result.ok, result.errors
    assert [c.argv for c in bins.calls("journalctl")] == [["--vacuum-time=7d", "--vacuum-size=200M"]]
    assert result.reported_bytes == 64 * MiB
    assert [(Path(f.path).name.split("@")[0], f.bytes) for f in result.files] == \
        [("system", 56 * MiB), ("user-1000", 8 * MiB)]
    assert result.freed_bytes >= 0
    assert "2 archived journal file(s)" in result.detail


async def test_journal_rotate_first_when_asked(machine, bins):
    bins.add("journalctl", [Rule(match=["--rotate"]),
                            Rule(match=["--vacuum-time=1s"], stderr=VACUUM)])
    params = params_for(machine, bins, journal_rotate=True, journal_vacuum_time="1s",
                        journal_vacuum_size=None)
    result = await JournalVacuum(params).run()
    assert result.ok
    assert [c.argv for c in bins.calls("journalctl")] == [["--rotate"], ["--vacuum-time=1s"]]
    assert bins.calls("journalctl")[0].env["LC_ALL"] == "C"


async def test_journal_failure_is_reported(machine, bins):
    bins.add("journalctl", [Rule(exit=1, stderr="Failed to open /var/log/journal: Permission denied\n")])
    result = await JournalVacuum(params_for(machine, bins)).run()
    assert not result.ok
    assert "exit 1" in result.errors[0] and "Permission denied" in result.errors[0]
    estimate = await JournalVacuum(params_for(machine, bins)).estimate()
    assert estimate.bytes is None and "Permission denied" in estimate.error


# --------------------------------------------------------------------------- rotated logs

@pytest.fixture
def logs(machine, tmp_path):
    nginx = machine / "var/log/nginx"
    keep = [write(nginx / "access.log", 300 * KiB), write(nginx / "error.log", 10 * KiB),
            write(nginx / "access.log.gz.tmp", 4 * KiB)]
    old = {"access.log.1": 400 * KiB, "access.log.2.gz": 200 * KiB, "error.log.3.gz": 50 * KiB,
           "error.log.old": 20 * KiB, "site/site.log.1.gz": 1 * MiB}
    for name, size in old.items():
        write(nginx / name, size)
    outside = tmp_path / "elsewhere"
    precious = write(outside / "precious.1.gz", 64 * KiB)
    write(outside / "dir" / "x.1.gz", 64 * KiB)
    (nginx / "sneaky.1.gz").symlink_to(precious)            # a link is not a rotated log
    (nginx / "linked-dir").symlink_to(outside / "dir")      # never entered
    return nginx, keep, old, outside


async def test_logs_estimate_lists_exact_files(machine, bins, logs):
    nginx, keep, old, _ = logs
    estimate = await RotatedLogs(params_for(machine, bins)).estimate()
    assert estimate.exact and estimate.error is None
    assert {os.path.relpath(f.path, nginx): f.bytes for f in estimate.files} == old
    assert estimate.bytes == sum(old.values())
    assert all((nginx / name).exists() for name in old)         # a dry run deletes nothing


async def test_logs_run_deletes_only_rotated_files_inside(machine, bins, logs):
    nginx, keep, old, outside = logs
    result = await RotatedLogs(params_for(machine, bins)).run()
    assert result.ok, result.errors
    assert {os.path.relpath(f.path, nginx): f.bytes for f in result.files} == old
    assert result.reported_bytes == sum(old.values())
    assert not any((nginx / name).exists() for name in old)
    assert all(path.exists() for path in keep)
    assert (nginx / "sneaky.1.gz").is_symlink() and (outside / "precious.1.gz").exists()
    assert (outside / "dir" / "x.1.gz").exists()
    assert_freed(result.freed_bytes, sum(old.values()))
    assert bins.calls() == []


async def test_logs_missing_dir_is_skipped(machine, bins):
    params = params_for(machine, bins, log_dirs=[machine / "var/log/nope", machine / "var/log/nginx"])
    write(machine / "var/log/nginx/a.log.1", 1000)
    estimate = await RotatedLogs(params).estimate()
    assert estimate.error is None and [Path(f.path).name for f in estimate.files] == ["a.log.1"]


# --------------------------------------------------------------------------- apt

@pytest.fixture
def apt_cache(machine):
    archives = machine / "var/cache/apt/archives"
    debs = {archives / "nginx_1.22.1-9_amd64.deb": 600 * KiB,
            archives / "libssl3_3.0.15-1~deb12u1_amd64.deb": 2 * MiB,
            archives / "partial/curl_7.88.1-10+deb12u8_amd64.deb": 100 * KiB}
    for path, size in debs.items():
        write(path, size)
    (archives / "lock").write_text("")
    (machine / "etc/debian_version").write_text("12.8\n")
    return archives, debs


async def test_apt_estimate_is_the_package_cache(machine, bins, apt_cache):
    bins.add("apt-get", [])
    archives, debs = apt_cache
    estimate = await AptCache(params_for(machine, bins)).estimate()
    assert estimate.exact and estimate.bytes == sum(debs.values())
    assert {Path(f.path) for f in estimate.files} == set(debs)
    assert bins.calls() == []


async def test_apt_clean_runs_and_measures(machine, bins, apt_cache):
    archives, debs = apt_cache
    # the recording apt-get empties the cached packages, as the real one removes them
    bins.add("apt-get", [Rule(match=["clean"], writes={str(p): "" for p in debs})])
    result = await AptCache(params_for(machine, bins)).run()
    assert result.ok, result.errors
    [call] = bins.calls("apt-get")
    assert call.argv == ["clean"] and call.env["DEBIAN_FRONTEND"] == "noninteractive"
    assert result.reported_bytes == sum(debs.values())
    assert {Path(f.path): f.bytes for f in result.files} == debs
    assert_freed(result.freed_bytes, sum(debs.values()))


async def test_apt_failure_is_reported(machine, bins, apt_cache):
    bins.add("apt-get", [Rule(match=["clean"], exit=100,
                              stderr="E: Could not get lock /var/cache/apt/archives/lock. It is "
                                     "held by process 4242 (apt-get)\n")])
    result = await AptCache(params_for(machine, bins)).run()
    assert not result.ok and "Could not get lock" in result.errors[0]


# --------------------------------------------------------------------------- nix

@pytest.fixture
def nixos(machine, bins):
    (machine / "etc/NIXOS").write_text("")
    return machine


@pytest.mark.parametrize("summary, freed", [
    ("1234 store paths deleted, 2.3 GiB freed\n", round(2.3 * GiB)),          # nix >= 2.20
    ("1234 store paths deleted, 2355.20 MiB freed\n", round(2355.20 * MiB)),  # older nix
])
async def test_nix_gc_run(nixos, bins, summary, freed):
    bins.add("nix-collect-garbage", [Rule(match=["-d"], stdout=summary, stderr=NIX_GC_LOG)])
    result = await NixGarbage(params_for(nixos, bins)).run()
    assert result.ok, result.errors
    assert [c.argv for c in bins.calls("nix-collect-garbage")] == [["-d"]]
    assert result.reported_bytes == freed
    assert result.detail == "2 generation(s) and 1234 store paths removed"


async def test_nix_dry_run_counts_generations(nixos, bins):
    bins.add("nix-collect-garbage", [Rule(match=["-d", "--dry-run"], stderr=NIX_DRY_RUN,
                                          stdout="1234 store paths would be deleted\n")])
    estimate = await NixGarbage(params_for(nixos, bins)).estimate()
    assert estimate.error is None and estimate.bytes is None
    assert estimate.detail.startswith("2 old generation(s) to remove, 1234 store paths")


async def test_nix_keeps_recent_generations_when_configured(nixos, bins):
    bins.add("nix-collect-garbage", [Rule(match=["--delete-older-than", "7d"],
                                          stdout="3 store paths deleted, 0.0 KiB freed\n")])
    result = await NixGarbage(params_for(nixos, bins, nix_delete_older_than="7d")).run()
    assert result.ok and result.reported_bytes == 0
    assert bins.calls("nix-collect-garbage")[0].argv == ["--delete-older-than", "7d"]


async def test_nix_gc_that_hangs_is_stopped(nixos, bins):
    bins.add("nix-collect-garbage", [Rule(sleep=30)])
    started = time.monotonic()
    result = await NixGarbage(params_for(nixos, bins, nix_timeout=0.5)).run()
    assert not result.ok and "did not finish" in result.errors[0]
    assert time.monotonic() - started < 10


# --------------------------------------------------------------------------- old root

@pytest.fixture
def old_root(machine, tmp_path):
    root = machine / "old-root"
    write(root / "etc/passwd", 2 * KiB)
    write(root / "usr/bin/bash", 1 * MiB)
    write(root / "var/lib/dpkg/status", 300 * KiB)
    (root / "empty/dir").mkdir(parents=True)
    outside = write(tmp_path / "keep/me.txt", 10 * KiB)
    (root / "link-to-file").symlink_to(outside)
    (root / "link-to-dir").symlink_to(outside.parent)
    return root, outside


async def test_old_root_estimate(machine, bins, old_root):
    root, _ = old_root
    estimate = await OldRoot(params_for(machine, bins)).estimate()
    assert estimate.exact
    assert 1324 * KiB <= estimate.bytes <= 1324 * KiB + 128 * KiB
    assert root.exists()


async def test_old_root_run_removes_it_without_following_links(machine, bins, old_root):
    root, outside = old_root
    result = await OldRoot(params_for(machine, bins)).run()
    assert result.ok, result.errors
    assert not root.exists()
    assert outside.exists() and outside.parent.is_dir()
    assert result.detail == f"5 file(s) removed from {root}"   # 3 files and 2 symlinks
    assert result.reported_bytes >= 1324 * KiB
    assert_freed(result.freed_bytes, 1324 * KiB)


async def test_old_root_that_is_a_symlink_is_not_offered(machine, bins, tmp_path):
    (tmp_path / "real-old").mkdir()
    (machine / "old-root").symlink_to(tmp_path / "real-old")
    assert not OldRoot(params_for(machine, bins)).applies()
    with pytest.raises(OSError):
        remove_tree(machine / "old-root")
    assert (tmp_path / "real-old").is_dir()


def test_remove_tree_refuses_root():
    with pytest.raises(ValueError):
        remove_tree(Path("/"))


# --------------------------------------------------------------------------- all together

async def test_dry_run_then_run_all(machine, bins, logs, apt_cache, old_root):
    _, _, old, _ = logs
    (machine / "etc/NIXOS").write_text("")
    bins.add("journalctl", [Rule(match=["--disk-usage"], stdout=DISK_USAGE),
                            Rule(match=["--vacuum-time=7d", "--vacuum-size=200M"], stderr=VACUUM)])
    bins.add("nix-collect-garbage", [
        Rule(match=["-d", "--dry-run"], stderr=NIX_DRY_RUN),
        Rule(match=["-d"], stdout="10 store paths deleted, 1.0 MiB freed\n", stderr=NIX_GC_LOG)])
    bins.add("apt-get", [Rule(match=["clean"])])
    params = params_for(machine, bins)

    estimates = await dry_run(params)
    assert [e.step for e in estimates] == ["nix", "journal", "logs", "apt", "old-root"]
    assert all(e.error is None for e in estimates)
    assert [c.argv for c in bins.calls()] == [["-d", "--dry-run"], ["--disk-usage"]]
    assert (machine / "old-root").exists()

    bins.clear()
    seen = []
    report = await run_all(params, on_step=lambda step: seen.append(step.name))
    assert seen == ["nix", "journal", "logs", "apt", "old-root"]
    assert report.ok, [r.errors for r in report.results]
    assert [c.tool for c in bins.calls()] == ["nix-collect-garbage", "journalctl", "apt-get"]
    assert report.freed_bytes == sum(r.freed_bytes for r in report.results)
    assert_freed(report.freed_bytes, sum(old.values()) + 1324 * KiB)   # logs and old root
    assert not (machine / "old-root").exists()


def test_real_tools_are_never_found_in_tests(machine, bins):
    """Guard: with tool_path set to the fakebin directory the real /usr/bin tools are invisible."""
    step = JournalVacuum(params_for(machine, bins))
    assert step.tool("journalctl") is None
    bins.add("journalctl", [])
    assert step.tool("journalctl") == str(bins.dir / "journalctl")
    assert cleanup.shutil.which("journalctl", path=str(bins.dir)) == str(bins.dir / "journalctl")
