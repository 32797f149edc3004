"""Upgrade drivers against recording fakes that print the real tools' output formats.

Nothing here upgrades, rebuilds or reboots this machine: apt-get, nixos-rebuild, nix-env, nix and
systemctl are fakebin executables. The one real call is `apt-get -s dist-upgrade`, a simulation.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from spbot.system.osinfo import parse_os_release
from spbot.features.upgrade.drivers import driver_for
from spbot.features.upgrade.drivers.apt import AptDriver, AptParams, parse_simulation
from spbot.features.upgrade.drivers.errors import (ActivationFailed, BuildFailed, PackageManagerBusy,
                                                   UnsupportedSystem, UpgradeError)
from spbot.features.upgrade.drivers.nixos import NixosDriver, NixosParams, parse_dry_build, parse_generations
from spbot.features.upgrade.drivers.systemctl import RebootParams, reboot
from spbot.features.upgrade.drivers.tools import clean_line
from tests.fakebin import FakeBin, Rule

# -- real output formats (apt 2.6 / dpkg 1.21 on Debian 12; Nix 2.18 / NixOS 24.05) ------------

APT_UPDATE = """\
Hit:1 http://deb.debian.org/debian bookworm InRelease
Get:2 http://deb.debian.org/debian bookworm-updates InRelease [55.4 kB]
Get:3 http://deb.debian.org/debian-security bookworm-security InRelease [48.0 kB]
Get:4 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages [245 kB]
Fetched 349 kB in 1s (412 kB/s)
Reading package lists...
"""

APT_UPDATE_WARNING = """\
Err:1 http://mirror.example.org/debian bookworm InRelease
  Temporary failure resolving 'mirror.example.org'
Reading package lists...
W: Failed to fetch http://mirror.example.org/debian/dists/bookworm/InRelease  Temporary failure resolving 'mirror.example.org'
W: Some index files failed to download. They have been ignored, or old ones used instead.
"""

SIM_NOTHING = """\
Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.
"""

SIM_PENDING = """\
Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
The following NEW packages will be installed:
  linux-image-6.1.0-28-amd64
The following packages will be REMOVED:
  oldlib1
The following packages will be upgraded:
  base-files libgcrypt20 linux-image-amd64 openssh-client
4 upgraded, 1 newly installed, 1 to remove and 0 not upgraded.
Remv oldlib1 [1.0-1]
Inst base-files [12.4+deb12u11] (12.4+deb12u15 Debian:12.15/oldstable [amd64])
Conf base-files (12.4+deb12u15 Debian:12.15/oldstable [amd64])
Inst libgcrypt20 [1.10.1-3] (1.10.1-3+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64])
Inst linux-image-6.1.0-28-amd64 (6.1.119-1 Debian-Security:12/stable-security [amd64])
Inst linux-image-amd64 [6.1.115-1] (6.1.119-1 Debian-Security:12/stable-security [amd64])
Inst openssh-client [1:9.2p1-2+deb12u6] (1:9.2p1-2+deb12u10 Debian:12.15/oldstable [amd64]) []
Conf libgcrypt20 (1.10.1-3+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64])
Conf linux-image-6.1.0-28-amd64 (6.1.119-1 Debian-Security:12/stable-security [amd64])
Conf linux-image-amd64 (6.1.119-1 Debian-Security:12/stable-security [amd64])
Conf openssh-client (1:9.2p1-2+deb12u10 Debian:12.15/oldstable [amd64])
"""

ROOT = Path(__file__).resolve().parents[1]
UPGRADE_LOG = [
    "Reading package lists...",
    "Building dependency tree...",
    "Reading state information...",
    "Calculating upgrade...",
    "The following NEW packages will be installed:",
    "  linux-image-6.1.0-28-amd64",
    "The following packages will be upgraded:",
    "  base-files libc6 linux-image-amd64 openssh-client",
    "4 upgraded, 1 newly installed, 0 to remove and 0 not upgraded.",
    "Need to get 70.2 MB of archives.",
    "After this operation, 412 MB of additional disk space will be used.",
    "Get:1 http://deb.debian.org/debian bookworm/main amd64 base-files amd64 12.4+deb12u15 [70.9 kB]",
    "Fetched 70.2 MB in 2s (35.1 MB/s)",
    "\x1b[1mPreconfiguring packages ...\x1b[0m",
    "(Reading database ... 5%\r(Reading database ... 100%\r"
    "(Reading database ... 45678 files and directories currently installed.)",
    "Preparing to unpack .../base-files_12.4+deb12u15_amd64.deb ...",
    "Unpacking base-files (12.4+deb12u15) over (12.4+deb12u11) ...",
    "Setting up base-files (12.4+deb12u15) ...",
    "Preparing to unpack .../libc6_2.36-9+deb12u8_amd64.deb ...",
    "Unpacking libc6:amd64 (2.36-9+deb12u8) over (2.36-9+deb12u7) ...",
    "Selecting previously unselected package linux-image-6.1.0-28-amd64.",
    "Preparing to unpack .../linux-image-6.1.0-28-amd64_6.1.119-1_amd64.deb ...",
    "Unpacking linux-image-6.1.0-28-amd64 (6.1.119-1) ...",
    "Unpacking linux-image-amd64 (6.1.119-1) over (6.1.115-1) ...",
    "Unpacking openssh-client (1:9.2p1-2+deb12u10) over (1:9.2p1-2+deb12u6) ...",
    "Setting up libc6:amd64 (2.36-9+deb12u8) ...",
    "Setting up linux-image-6.1.0-28-amd64 (6.1.119-1) ...",
    "I: /vmlinuz is now a symlink to boot/vmlinuz-6.1.0-28-amd64",
    "x" * 3000,
    "Setting up openssh-client (1:9.2p1-2+deb12u10) ...",
    "Processing triggers for man-db (2.11.2-2) ...",
    "Processing triggers for libc-bin (2.36-9+deb12u8) ...",
]

DPKG_LOCKED = """\
E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (unattended-upgr)
N: Be aware that removing the lock file is not a solution and may break your system.
E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?
"""

LISTS_LOCKED = """\
E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4321 (apt-get)
N: Be aware that removing the lock file is not a solution and may break your system.
E: Unable to lock directory /var/lib/apt/lists/
"""

HASH = "0123456789abcdfghijklmnpqrsvwxyz"  # 32 characters of Nix's base32 alphabet
DRV_HELLO = f"/nix/store/{HASH}-hello-2.12.1.drv"

DRY_BUILD_PENDING = f"""\
building the system configuration...
these 3 derivations will be built:
  {DRV_HELLO}
  /nix/store/{HASH[::-1]}-system-path.drv
  /nix/store/{HASH[1:]}a-nixos-system-myhost-24.05.20240612.cc54fb4.drv
these 2 paths will be fetched (30.51 MiB download, 150.22 MiB unpacked):
  /nix/store/{HASH[2:]}bc-linux-6.6.32
  /nix/store/{HASH[3:]}bcd-openssl-3.0.14
"""

SWITCH_LOG = [
    "unpacking channels...",
    "building Nix...",
    "building the system configuration...",
    "these 2 derivations will be built:",
    f"  {DRV_HELLO}",
    f"building '{DRV_HELLO}'...",
    "stopping the following units: nginx.service",
    "activating the configuration...",
    "setting up /etc...",
    "reloading user units for root...",
    "setting up tmpfiles",
    "starting the following units: nginx.service",
]

BUILD_FAILURE = f"""\
building the system configuration...
these 3 derivations will be built:
  {DRV_HELLO}
building '{DRV_HELLO}'...
error: builder for '{DRV_HELLO}' failed with exit code 2;
       last 3 log lines:
       > hello.c: In function 'main':
       > hello.c:3:5: error: expected ';' before 'return'
       > make: *** [Makefile:12: hello] Error 1
       For full logs, run 'nix log {DRV_HELLO}'.
error: 1 dependencies of derivation '/nix/store/{HASH[::-1]}-system-path.drv' failed to build
"""


# -- helpers ----------------------------------------------------------------------------------

def generations_output(current: int, count: int = 3) -> str:
    """`nix-env --list-generations` as Nix prints it: printf("%4i   %s   %s\\n", ...)."""
    lines = []
    for number in range(current - count + 1, current + 1):
        mark = "(current)" if number == current else ""
        lines.append(f"{number:4d}   2024-11-{number % 28 + 1:02d} 10:00:00   {mark}\n")
    return "".join(lines)


def nix_env_rules(current: int) -> list[Rule]:
    return [Rule(match=["--list-generations", "-p", "**"], stdout=generations_output(current))]


def then_current(bins: FakeBin, current: int) -> dict[str, str]:
    """A `writes` entry that makes the fake nix-env report a new current generation afterwards."""
    rules = [asdict(rule) for rule in nix_env_rules(current)]
    return {str(bins.dir / "nix-env.rules.json"): json.dumps(rules)}


class Lines:
    """An on_line callback that records what it got and when."""

    def __init__(self):
        self.lines: list[str] = []
        self.times: list[float] = []

    async def __call__(self, line: str) -> None:
        self.lines.append(line)
        self.times.append(time.monotonic())


@pytest.fixture
def bins(tmp_path) -> FakeBin:
    return FakeBin(tmp_path)


@pytest.fixture
def apt(bins, tmp_path) -> AptDriver:
    params = AptParams(env=bins.env(), reboot_required_file=tmp_path / "reboot-required",
                       reboot_required_pkgs=tmp_path / "reboot-required.pkgs")
    return AptDriver(params)


@pytest.fixture
def nixos(bins, tmp_path) -> NixosDriver:
    bins.add("nix-env", nix_env_rules(41))
    params = NixosParams(env=bins.env(), profile=tmp_path / "profiles" / "system",
                         booted_system=tmp_path / "booted-system", current_system=tmp_path / "current-system")
    return NixosDriver(params)


# -- apt: check -------------------------------------------------------------------------------

async def test_apt_check_nothing_pending(apt, bins):
    bins.add("apt-get", [Rule(match=["update"], stdout=APT_UPDATE),
                         Rule(match=["-s", "dist-upgrade"], stdout=SIM_NOTHING)])
    check = await apt.check()
    assert not check.pending
    assert check.summary.upgraded == 0 and not check.reboot.required
    assert [c.argv for c in bins.calls("apt-get")] == [["update"], ["-s", "dist-upgrade"]]
    assert all(c.env["DEBIAN_FRONTEND"] == "noninteractive" for c in bins.calls("apt-get"))


async def test_apt_check_pending_with_security_and_reboot(apt, bins, tmp_path):
    bins.add("apt-get", [Rule(match=["update"], stdout=APT_UPDATE),
                         Rule(match=["-s", "dist-upgrade"], stdout=SIM_PENDING)])
    (tmp_path / "reboot-required").write_text("*** System restart required ***\n")
    (tmp_path / "reboot-required.pkgs").write_text("linux-image-6.1.0-27-amd64\nlibc6\nlibc6\n")
    check = await apt.check()
    assert check.pending
    assert [(u.name, u.current, u.new) for u in check.updates] == [
        ("base-files", "12.4+deb12u11", "12.4+deb12u15"),
        ("libgcrypt20", "1.10.1-3", "1.10.1-3+deb12u1"),
        ("linux-image-6.1.0-28-amd64", None, "6.1.119-1"),
        ("linux-image-amd64", "6.1.115-1", "6.1.119-1"),
        ("openssh-client", "1:9.2p1-2+deb12u6", "1:9.2p1-2+deb12u10"),
    ]
    assert [u.name for u in check.security_updates] == [
        "libgcrypt20", "linux-image-6.1.0-28-amd64", "linux-image-amd64"]
    assert check.updates[1].origin == "Debian:12.15/oldstable, Debian-Security:12/oldstable-security"
    assert check.removals == ["oldlib1"]
    assert check.summary.model_dump() == {"upgraded": 4, "newly_installed": 1, "removed": 1, "not_upgraded": 0}
    assert check.reboot.model_dump() == {"required": True, "reasons": ["linux-image-6.1.0-27-amd64", "libc6"]}


async def test_apt_check_reports_update_warnings(apt, bins):
    bins.add("apt-get", [Rule(match=["update"], stdout=APT_UPDATE_WARNING),
                         Rule(match=["-s", "dist-upgrade"], stdout=SIM_NOTHING)])
    check = await apt.check()
    assert check.warnings[0].startswith("Failed to fetch http://mirror.example.org")


async def test_apt_check_without_refresh_skips_update(apt, bins):
    bins.add("apt-get", [Rule(match=["-s", "dist-upgrade"], stdout=SIM_NOTHING)])
    await apt.check(refresh=False)
    assert [c.argv for c in bins.calls("apt-get")] == [["-s", "dist-upgrade"]]


async def test_apt_update_lock_is_busy(apt, bins):
    bins.add("apt-get", [Rule(match=["update"], stderr=LISTS_LOCKED, exit=100)])
    with pytest.raises(PackageManagerBusy, match="another package manager is running; try again later"):
        await apt.check()


# -- apt: upgrade -----------------------------------------------------------------------------

async def test_apt_upgrade_streams_lines_and_parses_result(apt, bins, tmp_path):
    bins.add("apt-get", [
        Rule(match=["update"], stdout=APT_UPDATE),
        Rule(match=["-y", "**"], stream=UPGRADE_LOG, line_delay=0.01,
             writes={str(tmp_path / "reboot-required"): "*** System restart required ***\n",
                     str(tmp_path / "reboot-required.pkgs"): "linux-image-6.1.0-28-amd64\n"}),
    ])
    got = Lines()
    result = await apt.upgrade(on_line=got)

    update, upgrade = bins.calls("apt-get")
    assert update.argv == ["update"]
    assert upgrade.argv == ["-y", "-o", "Dpkg::Options::=--force-confdef",
                            "-o", "Dpkg::Options::=--force-confold", "dist-upgrade"]
    assert upgrade.env["DEBIAN_FRONTEND"] == "noninteractive"
    assert upgrade.env["LC_ALL"] == "C.UTF-8"

    assert got.lines[0].startswith("Hit:1 ")  # the update's output is streamed too
    assert "Preconfiguring packages ..." in got.lines  # ANSI removed
    assert "(Reading database ... 45678 files and directories currently installed.)" in got.lines
    assert all(len(line) <= 500 and "\x1b" not in line and "\r" not in line for line in got.lines)
    assert got.lines[-1] == "Processing triggers for libc-bin (2.36-9+deb12u8) ..."
    assert got.times[-1] - got.times[len(APT_UPDATE.splitlines())] >= 0.2  # arrived over time

    assert [(c.name, c.action, c.old, c.new) for c in result.changes] == [
        ("base-files", "upgraded", "12.4+deb12u11", "12.4+deb12u15"),
        ("libc6", "upgraded", "2.36-9+deb12u7", "2.36-9+deb12u8"),
        ("linux-image-6.1.0-28-amd64", "installed", None, "6.1.119-1"),
        ("linux-image-amd64", "upgraded", "6.1.115-1", "6.1.119-1"),
        ("openssh-client", "upgraded", "1:9.2p1-2+deb12u6", "1:9.2p1-2+deb12u10"),
    ]
    assert (result.summary.upgraded, result.summary.newly_installed) == (4, 1)
    assert result.changed and result.duration > 0
    assert result.reboot.required and result.reboot.reasons == ["linux-image-6.1.0-28-amd64"]
    assert result.log_tail[-1] == got.lines[-1]


async def test_apt_upgrade_with_lock_wait(bins, tmp_path):
    driver = AptDriver(AptParams(env=bins.env(), lock_wait=120,
                                 reboot_required_file=tmp_path / "none"))
    bins.add("apt-get", [Rule(match=["**"], stdout="0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n")])
    result = await driver.upgrade(refresh=False)
    assert not result.changed
    assert bins.calls("apt-get")[0].argv[:2] == ["-o", "DPkg::Lock::Timeout=120"]


async def test_apt_upgrade_dpkg_lock_held(apt, bins):
    bins.add("apt-get", [Rule(match=["update"], stdout=APT_UPDATE),
                         Rule(match=["-y", "**"], stderr=DPKG_LOCKED, exit=100)])
    with pytest.raises(PackageManagerBusy) as info:
        await apt.upgrade()
    assert str(info.value) == ("another package manager is running; try again later "
                               "(held by unattended-upgr, pid 1234)")


async def test_apt_upgrade_frontend_lock_message_alone(apt, bins):
    stderr = ("E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), "
              "is another process using it?\n")
    bins.add("apt-get", [Rule(match=["-y", "**"], stderr=stderr, exit=100)])
    with pytest.raises(PackageManagerBusy, match="^another package manager is running; try again later$"):
        await apt.upgrade(refresh=False)


INTERRUPTED = "E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem.\n"


async def test_apt_upgrade_finishes_an_interrupted_installation_first(bins, tmp_path):
    """A crash or a stop in the middle of an earlier upgrade leaves dpkg interrupted, and every apt-get
    run refuses until `dpkg --configure -a`: the family should not need a root console for that."""
    finished = tmp_path / "dpkg-finished"
    bins.add("dpkg", [Rule(match=["--force-confdef", "--force-confold", "--configure", "-a"],
                           stream=["Setting up nginx (1.22.1-9) ..."], writes={str(finished): "yes"})])
    bins.add("apt-get", [Rule(match=["-y", "**"], handler="tests.test_upgrade:apt_after_dpkg")])
    apt = AptDriver(AptParams(env=bins.env(PYTHONPATH=str(ROOT)), reboot_required_file=tmp_path / "none"))
    lines: list[str] = []
    result = await apt.upgrade(refresh=False, on_line=lines.append)
    assert [c.tool for c in bins.calls()] == ["apt-get", "dpkg", "apt-get"]
    assert "finishing an earlier installation that was interrupted: dpkg --configure -a" in lines
    assert "Setting up nginx (1.22.1-9) ..." in lines
    assert "base-files" in [c.name for c in result.changes]


def apt_after_dpkg(argv: list[str], base: str) -> int:
    """apt-get dist-upgrade that refuses until the fake dpkg has finished the interrupted installation."""
    if not (Path(base).parent / "dpkg-finished").exists():
        sys.stderr.write(INTERRUPTED)
        return 100
    sys.stdout.write("\n".join(UPGRADE_LOG) + "\n")
    return 0


async def test_apt_upgrade_says_so_when_the_interrupted_installation_cannot_be_finished(apt, bins):
    bins.add("dpkg", [Rule(match=["**"], exit=1, stderr="dpkg: error processing package nginx (--configure):\n")])
    bins.add("apt-get", [Rule(match=["-y", "**"], stderr=INTERRUPTED, exit=100)])
    with pytest.raises(UpgradeError, match=r"finishing it \(dpkg --configure -a\) failed \(exit code 1\): "
                                           r"dpkg: error processing package nginx"):
        await apt.upgrade(refresh=False)
    assert [c.tool for c in bins.calls()] == ["apt-get", "dpkg"]


async def test_apt_check_of_an_interrupted_installation_says_upgrade_finishes_it(apt, bins):
    bins.add("dpkg", [Rule(match=["**"])])
    bins.add("apt-get", [Rule(match=["-s", "**"], stderr=INTERRUPTED, exit=100)])
    with pytest.raises(UpgradeError, match=r"interrupted; !upgrade finishes it \(dpkg --configure -a\)"):
        await apt.check(refresh=False)
    assert [c.tool for c in bins.calls()] == ["apt-get"]          # a check changes nothing


async def test_apt_upgrade_other_failure_keeps_tail(apt, bins):
    bins.add("apt-get", [Rule(match=["-y", "**"], exit=100,
                              stream=["Setting up nginx (1.22.1-9) ..."],
                              stderr="E: Sub-process /usr/bin/dpkg returned an error code (1)\n")])
    with pytest.raises(UpgradeError, match=r"exit code 100\): Sub-process /usr/bin/dpkg") as info:
        await apt.upgrade(refresh=False)
    assert "Setting up nginx (1.22.1-9) ..." in info.value.tail


async def test_failing_callback_does_not_stop_the_upgrade(apt, bins):
    bins.add("apt-get", [Rule(match=["-y", "**"], stream=UPGRADE_LOG)])

    def broken(line: str) -> None:
        raise RuntimeError("matrix is down")

    result = await apt.upgrade(on_line=broken, refresh=False)
    assert len(result.changes) == 5


async def test_apt_timeout_is_an_upgrade_error(bins, tmp_path):
    driver = AptDriver(AptParams(env=bins.env(), update_timeout=0.5))
    bins.add("apt-get", [Rule(match=["update"], sleep=5)])
    started = time.monotonic()
    with pytest.raises(UpgradeError, match="did not finish within"):
        await driver.refresh()
    assert time.monotonic() - started < 4


async def test_missing_apt_get_is_a_clear_error(bins):
    driver = AptDriver(AptParams(apt_get="/nonexistent/apt-get"))
    with pytest.raises(UpgradeError, match="not installed"):
        await driver.refresh()


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="no apt-get on this machine")
async def test_real_apt_simulation_parses():
    """Read-only: `apt-get -s dist-upgrade` simulates and changes nothing."""
    check = await AptDriver(AptParams(simulate_timeout=120)).check(refresh=False)
    assert check.summary is not None
    assert len(check.updates) == check.summary.upgraded + check.summary.newly_installed
    assert len(check.removals) == check.summary.removed


# -- NixOS ------------------------------------------------------------------------------------

def test_parse_generations():
    generations = parse_generations("  40   2024-10-20 09:12:03   \n  41   2024-11-01 10:00:00   (current)\n")
    assert [(g.number, g.current, g.created.isoformat()) for g in generations] == [
        (40, False, "2024-10-20T09:12:03"), (41, True, "2024-11-01T10:00:00")]


async def test_generations_with_versions(nixos, bins, tmp_path):
    link = tmp_path / "profiles" / "system-41-link"
    link.mkdir(parents=True)
    (link / "nixos-version").write_text("24.05.20240612.cc54fb4\n")
    generations = await nixos.generations()
    assert [g.number for g in generations] == [39, 40, 41]
    assert generations[-1].current and generations[-1].nixos_version == "24.05.20240612.cc54fb4"
    assert generations[0].nixos_version is None
    assert await nixos.current_generation() == 41
    assert bins.calls("nix-env")[0].argv == ["--list-generations", "-p", str(tmp_path / "profiles" / "system")]


async def test_nixos_check_nothing_pending(nixos, bins):
    bins.add("nixos-rebuild", [Rule(match=["dry-build", "--upgrade"],
                                    stderr="unpacking channels...\nbuilding the system configuration...\n")])
    check = await nixos.check()
    assert not check.pending and check.family == "nixos"


def test_parse_dry_build_pending():
    check = parse_dry_build(DRY_BUILD_PENDING)
    assert [(u.name, u.origin) for u in check.updates] == [
        ("hello-2.12.1", "build"), ("system-path", "build"),
        ("nixos-system-myhost-24.05.20240612.cc54fb4", "build"),
        ("linux-6.6.32", "download"), ("openssl-3.0.14", "download")]
    assert check.download == "30.51 MiB download, 150.22 MiB unpacked"
    single = parse_dry_build(f"this derivation will be built:\n  {DRV_HELLO}\n")
    assert [u.name for u in single.updates] == ["hello-2.12.1"]


async def test_nixos_check_pending_with_channels(nixos, bins):
    bins.add("nixos-rebuild", [Rule(match=["dry-build", "--upgrade"], stderr=DRY_BUILD_PENDING)])
    check = await nixos.check()
    assert check.pending and len(check.updates) == 5


async def test_nixos_check_flake_updates_a_temporary_copy(bins, tmp_path):
    flake = tmp_path / "etc-nixos"
    flake.mkdir()
    (flake / "flake.nix").write_text("{ outputs = { self }: { }; }\n")
    (flake / "flake.lock").write_text("OLD\n")
    bins.add("nix", [Rule(match=["--extra-experimental-features", "nix-command flakes", "flake", "update"],
                          writes={"flake.lock": "NEW\n"})])
    bins.add("nixos-rebuild", [Rule(match=["dry-build", "--flake", "*"], stderr=DRY_BUILD_PENDING)])
    driver = NixosDriver(NixosParams(env=bins.env(), flake=f"{flake}#myhost",
                                     booted_system=tmp_path / "b", current_system=tmp_path / "c"))
    check = await driver.check()
    assert check.pending
    update_call = bins.calls("nix")[0]
    assert Path(update_call.cwd) != flake and Path(update_call.cwd).name == "flake"
    assert bins.calls("nixos-rebuild")[0].argv == ["dry-build", "--flake", f"{update_call.cwd}#myhost"]
    assert (flake / "flake.lock").read_text() == "OLD\n"
    assert not Path(update_call.cwd).exists()  # the temporary copy is gone


async def test_nixos_upgrade_with_channels(nixos, bins):
    bins.add("nixos-rebuild", [Rule(match=["switch", "--upgrade"], stream=SWITCH_LOG, line_delay=0.01,
                                    writes=then_current(bins, 42))])
    got = Lines()
    result = await nixos.upgrade(on_line=got)
    assert (result.generation_before, result.generation_after) == (41, 42)
    assert result.changed and result.family == "nixos"
    assert got.lines == SWITCH_LOG
    assert result.log_tail[-1] == "starting the following units: nginx.service"
    assert [c.argv for c in bins.calls("nixos-rebuild")] == [["switch", "--upgrade"]]


async def test_nixos_upgrade_with_flake_updates_inputs_first(bins, tmp_path):
    flake = tmp_path / "etc-nixos"
    flake.mkdir()
    (flake / "flake.lock").write_text("OLD\n")
    bins.add("nix-env", nix_env_rules(7))
    bins.add("nix", [Rule(match=["**"], writes={"flake.lock": "NEW\n"})])
    bins.add("nixos-rebuild", [Rule(match=["switch", "--flake", f"{flake}#myhost"], stream=SWITCH_LOG,
                                    writes=then_current(bins, 8))])
    driver = NixosDriver(NixosParams(env=bins.env(), flake=f"{flake}#myhost",
                                     booted_system=tmp_path / "b", current_system=tmp_path / "c"))
    result = await driver.upgrade()
    assert (result.generation_before, result.generation_after) == (7, 8)
    assert Path(bins.calls("nix")[0].cwd) == flake
    assert (flake / "flake.lock").read_text() == "NEW\n"


async def test_nixos_build_failure_surfaces_the_error(nixos, bins):
    bins.add("nixos-rebuild", [Rule(match=["switch", "--upgrade"], stderr=BUILD_FAILURE, exit=1)])
    got = Lines()
    with pytest.raises(BuildFailed) as info:
        await nixos.upgrade(on_line=got)
    message = str(info.value)
    assert "running system is unchanged" in message
    assert "builder for 'hello-2.12.1' failed with exit code 2" in message
    assert info.value.tail[0].startswith("error: builder for")
    assert any("expected ';' before 'return'" in line for line in info.value.tail)
    assert info.value.tail[-1].startswith("error: 1 dependencies of derivation")
    assert any(line.startswith("error: builder") for line in got.lines)


async def test_nixos_evaluation_error(nixos, bins):
    stderr = ("building the system configuration...\n"
              "error: undefined variable 'nginxx'\n\n"
              "       at /etc/nixos/configuration.nix:12:5:\n")
    bins.add("nixos-rebuild", [Rule(match=["switch", "--upgrade"], stderr=stderr, exit=1)])
    with pytest.raises(BuildFailed, match="undefined variable 'nginxx'"):
        await nixos.upgrade()


async def test_nixos_activation_failure_names_the_new_generation(nixos, bins):
    stderr = ("activating the configuration...\n"
              "warning: the following units failed: nginx.service\n"
              "warning: error(s) occurred while switching to the new configuration\n")
    bins.add("nixos-rebuild", [Rule(match=["switch", "--upgrade"], stderr=stderr, exit=4,
                                    writes=then_current(bins, 42))])
    with pytest.raises(ActivationFailed, match="generation 42 was built and made current") as info:
        await nixos.upgrade()
    assert info.value.generation == 42
    assert "warning: the following units failed: nginx.service" in info.value.tail


async def test_nixos_rollback(bins, tmp_path):
    bins.add("nix-env", nix_env_rules(42))
    bins.add("nixos-rebuild", [Rule(match=["switch", "--rollback"], writes=then_current(bins, 41),
                                    stderr="switching profile from version 42 to 41\n"
                                           "activating the configuration...\nsetting up /etc...\n")])
    driver = NixosDriver(NixosParams(env=bins.env(), booted_system=tmp_path / "b",
                                     current_system=tmp_path / "c"))
    got = Lines()
    result = await driver.rollback(on_line=got)
    assert (result.generation_before, result.generation_after) == (42, 41)
    assert bins.calls("nixos-rebuild")[0].argv == ["switch", "--rollback"]
    assert got.lines[0] == "switching profile from version 42 to 41"


async def test_nixos_reboot_status_compares_kernels(nixos, tmp_path):
    store = tmp_path / "store"
    for name in ("linux-6.6.30", "linux-6.6.32", "initrd-a"):
        (store / name).mkdir(parents=True)
        (store / name / "file").write_text(name)
    for system, kernel in (("booted-system", "linux-6.6.30"), ("current-system", "linux-6.6.30")):
        (tmp_path / system).mkdir()
        (tmp_path / system / "kernel").symlink_to(store / kernel / "file")
        (tmp_path / system / "initrd").symlink_to(store / "initrd-a" / "file")
    assert not (await nixos.reboot_status()).required
    (tmp_path / "current-system" / "kernel").unlink()
    (tmp_path / "current-system" / "kernel").symlink_to(store / "linux-6.6.32" / "file")
    status = await nixos.reboot_status()
    assert status.required and status.reasons == ["kernel"]


# -- choosing a driver, reboot, line cleaning -------------------------------------------------

def test_driver_for_each_family():
    assert isinstance(driver_for(parse_os_release("ID=debian\n")), AptDriver)
    ubuntu = driver_for(parse_os_release("ID=ubuntu\nID_LIKE=debian\n"))
    assert isinstance(ubuntu, AptDriver) and ubuntu.family == "ubuntu"
    assert isinstance(driver_for(parse_os_release("ID=nixos\n")), NixosDriver)
    with pytest.raises(UnsupportedSystem, match="not supported on Fedora"):
        driver_for(parse_os_release('ID=fedora\nPRETTY_NAME="Fedora Linux 40"\n'))


async def test_reboot_runs_systemctl_reboot(bins):
    bins.add("systemctl", [Rule(match=["reboot"])])
    await reboot(RebootParams(env=bins.env()))
    assert [c.argv for c in bins.calls("systemctl")] == [["reboot"]]


async def test_reboot_refused(bins):
    bins.add("systemctl", [Rule(match=["reboot"], exit=1,
                                stderr="Failed to reboot system via logind: Access denied\n")])
    with pytest.raises(UpgradeError, match="reboot was refused") as info:
        await reboot(RebootParams(env=bins.env()))
    assert "Access denied" in info.value.tail[0]


def test_parse_simulation_of_nothing():
    check = parse_simulation(SIM_NOTHING)
    assert check.updates == [] and check.summary.not_upgraded == 0


@pytest.mark.parametrize("raw, clean", [
    ("\x1b[1;31mE: \x1b[0mbroken", "E: broken"),
    ("Progress: [ 10%]\rProgress: [ 90%]\r", "Progress: [ 90%]"),
    ("\x1b]0;title\x07text\n", "text"),
    ("tab\tkept\x00\x07", "tab\tkept"),
    ("y" * 600, "y" * 499 + "…"),
])
def test_clean_line(raw, clean):
    assert clean_line(raw) == clean
