"""The production path as a new admin walks it, as far as this machine allows (no systemd runs here):
`deploy/install --root DIR` lays out code, runtime-only venv, config and state with the right modes and
is idempotent; `--update` keeps state and names the versions; the hardened unit passes
`systemd-analyze verify` and `security`, and every path a feature writes by default is writable in it;
the outside runner hands system tools to `systemd-run` (a recording stand-in here) and stops them on
cancel."""
from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from spbot import commands
from spbot.config import SECTIONS

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "spbot.service"
RUN_OUTSIDE = ROOT / "deploy" / "outside" / "run-outside"
STATE_DIR = Path("/var/lib/spbot")           # StateDirectory=spbot
CACHE_DIR = Path("/var/cache/spbot")         # CacheDirectory=spbot


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("root")
    result = subprocess.run([str(ROOT / "deploy" / "install"), "--root", str(root)], capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "installed in" in result.stdout
    return root


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_lays_out_code_config_and_state_privately(installed):
    assert mode(installed / "etc/spbot") == 0o700
    assert mode(installed / "etc/spbot/spbot.toml") == 0o600
    assert mode(installed / "var/lib/spbot") == 0o700
    assert (installed / "etc/systemd/system/spbot.service").read_text() == UNIT.read_text()
    outside = installed / "opt/spbot/outside-bin"
    for tool in ("apt-get", "nixos-rebuild", "nix-env", "nix-collect-garbage", "resize2fs", "xfs_growfs"):
        assert os.readlink(outside / tool) == "run-outside"
    assert not (installed / "opt/spbot/src/.venv").exists()
    assert not (installed / "opt/spbot/src/deploy/synapse-dev/state").exists()


def test_the_venv_has_the_runtime_packages_only(installed):
    listing = subprocess.run([str(installed / "opt/spbot/.venv/bin/python"), "-m", "pip", "list",
                              "--format=freeze"], capture_output=True, text=True, check=True).stdout.lower()
    names = {line.split("==")[0] for line in listing.splitlines()}
    assert {"spbot", "matrix-nio", "hcloud", "b2sdk"} <= names
    assert not names & {"matrix-synapse", "pytest", "moto", "ruff", "trustme"}, names
    editable = subprocess.run([str(installed / "opt/spbot/.venv/bin/python"), "-c",
                               "import spbot; print(spbot.__file__)"], capture_output=True, text=True,
                              cwd=installed).stdout
    assert str(installed / "opt/spbot/.venv") in editable, "a regular install, not the checkout"


def test_the_install_puts_one_top_level_package_in_site_packages(installed):
    site = next((installed / "opt/spbot/.venv/lib").glob("python3*/site-packages"))
    record = next(site.glob("spbot-*.dist-info")) / "RECORD"
    tops = {line.split("/")[0] for line in record.read_text().splitlines()}
    assert {t for t in tops if not t.endswith((".dist-info", ".pth"))} <= {"spbot", "..", "bin"}, tops
    assert (site / "spbot/commands/backup.py").exists() and (site / "spbot/providers/dns").is_dir()
    assert not (site / "commands").exists() and not (site / "providers").exists()


def test_every_package_folder_is_listed_for_the_wheel():
    """pyproject lists the packages by hand (commands/ and providers/ install under spbot/): a new
    feature package that is missing there would be left out of the install."""
    import tomllib
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for top, name in (("spbot", "spbot"), ("commands", "spbot.commands"), ("providers", "spbot.providers")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((name, *rel)))
    assert found == listed


def test_the_installed_example_config_is_accepted(installed):
    result = subprocess.run([str(installed / "opt/spbot/.venv/bin/spbot"), "config", "check",
                             str(installed / "etc/spbot/spbot.toml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_install_again_keeps_the_admins_config_and_update_names_versions(installed):
    config = installed / "etc/spbot/spbot.toml"
    config.write_text(config.read_text() + "\n## edited by the admin\n")
    (installed / "var/lib/spbot/spbot.db").write_text("state")
    again = subprocess.run([str(ROOT / "deploy/install"), "--root", str(installed)], capture_output=True,
                           text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    assert "## edited by the admin" in config.read_text()
    update = subprocess.run([str(ROOT / "deploy/install"), "--update", "--root", str(installed)],
                            capture_output=True, text=True, timeout=900)
    assert update.returncode == 0, update.stderr
    assert re.search(r"updated spbot \S+ -> \S+ \(state in .* kept\)", update.stdout), update.stdout
    assert (installed / "var/lib/spbot/spbot.db").read_text() == "state"


def test_update_without_an_install_says_so(tmp_path):
    result = subprocess.run([str(ROOT / "deploy/install"), "--update", "--root", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "run deploy/install first" in result.stdout


# --- the unit --------------------------------------------------------------------------------------

def unit_values(key: str) -> list[str]:
    values = []
    for line in UNIT.read_text().splitlines():
        if line.startswith(key + "="):
            values += line.split("=", 1)[1].split()
    return values


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_unit_verifies_and_is_rated_safe(installed, tmp_path):
    unit = tmp_path / "spbot.service"
    unit.write_text(UNIT.read_text().replace("/opt/spbot/.venv/bin/spbot",
                                             str(installed / "opt/spbot/.venv/bin/spbot")))
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True,
                            text=True, cwd=tmp_path)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                              capture_output=True, text=True, cwd=tmp_path)
    score = float(re.search(r"Overall exposure level for spbot.service: ([0-9.]+)", security.stdout).group(1))
    assert score < 5.0, security.stdout[-2000:]


def writable(path: Path) -> bool:
    allowed = [STATE_DIR, CACHE_DIR] + [Path(p.lstrip("-")) for p in unit_values("ReadWritePaths")]
    return any(path == a or a in path.parents for a in allowed)


def test_every_path_a_feature_writes_by_default_is_writable_in_the_unit():
    commands.load_all()
    cleanup, ssh = SECTIONS["cleanup"](), SECTIONS["ssh"]()
    writes = {
        "!ssh add/remove": [ssh.authorized_keys, ssh.authorized_keys.with_suffix(".tmp")],
        "!cleanup run (journal)": [cleanup.journal_dir],
        "!cleanup run (logs)": cleanup.log_dirs,
        "!cleanup run (apt)": [cleanup.apt_archives],
        "!cleanup run (old-root)": [cleanup.old_root],
        "state (database, keys, restic password and cache)": [STATE_DIR / "spbot.db", STATE_DIR / "crypto",
                                                               STATE_DIR / "restic-cache"],
        "!backup restore (usual service data)": [Path("/var/lib/nextcloud"), Path("/var/lib/matrix-synapse"),
                                                 Path("/srv/photos"), Path("/var/vmail/example.org")],
    }
    refused = {what: [str(p) for p in paths if not writable(Path(p))] for what, paths in writes.items()}
    assert not any(refused.values()), refused


def test_system_changing_tools_are_run_outside_the_sandbox():
    path = unit_values("Environment")[0]
    assert path.startswith("PATH=/opt/spbot/outside-bin:"), "the wrappers come first"
    tools = {SECTIONS["upgrade"]().apt.apt_get, SECTIONS["upgrade"]().nixos.nixos_rebuild,
             SECTIONS["upgrade"]().nixos.nix_env, "nix-collect-garbage", "resize2fs", "xfs_growfs"}
    install = (ROOT / "deploy" / "install").read_text()
    assert all(tool in install for tool in tools), "every system-changing tool gets a wrapper"
    assert unit_values("ProtectSystem") == ["strict"] and unit_values("NoNewPrivileges") == ["true"]


# --- the outside runner ----------------------------------------------------------------------------

def stand_ins(tmp_path: Path) -> dict[str, str]:
    """A PATH with recording stand-ins: systemd-run runs the command after `--`, systemctl records."""
    bin_dir, real_dir = tmp_path / "bin", tmp_path / "real"
    bin_dir.mkdir()
    real_dir.mkdir()
    log = tmp_path / "calls.log"
    (bin_dir / "systemd-run").write_text(f"""#!/bin/sh
echo "systemd-run $*" >> {log}
while [ "$1" != "--" ]; do shift; done
shift
exec "$@"
""")
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "systemctl $*" >> {log}\n')
    (real_dir / "apt-get").write_text(f"""#!/bin/sh
echo "apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >> {log}
echo "Reading package lists..."
[ "$1" = slow ] && exec sleep 30
exit 3
""")
    for script in [*bin_dir.iterdir(), *real_dir.iterdir()]:
        script.chmod(0o755)
    wrapper = bin_dir / "apt-get"
    wrapper.symlink_to(RUN_OUTSIDE)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "SPBOT_OUTSIDE_PATH": str(real_dir), "LOG": str(log),
            "WRAPPER": str(wrapper)}


def test_under_systemd_the_tool_runs_as_a_transient_unit_with_its_output_and_status(tmp_path):
    paths = stand_ins(tmp_path)
    env = {"PATH": paths["PATH"], "SPBOT_OUTSIDE_PATH": paths["SPBOT_OUTSIDE_PATH"],
           "INVOCATION_ID": "0123abcd", "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run([paths["WRAPPER"], "-y", "dist-upgrade"], env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 3, "the tool's exit status comes back"
    assert result.stdout == "Reading package lists...\n", "the output is piped back for the live log"
    calls = Path(paths["LOG"]).read_text().splitlines()
    assert re.match(r"systemd-run --unit=spbot-apt-get-\d+ --quiet --collect --wait --pipe "
                    r"--service-type=exec --setenv=DEBIAN_FRONTEND -- \S+/real/apt-get -y dist-upgrade$",
                    calls[0]), calls
    assert calls[1] == "apt-get -y dist-upgrade DEBIAN_FRONTEND=noninteractive"


def test_a_cancelled_tool_has_its_unit_stopped(tmp_path):
    paths = stand_ins(tmp_path)
    env = {"PATH": paths["PATH"], "SPBOT_OUTSIDE_PATH": paths["SPBOT_OUTSIDE_PATH"], "INVOCATION_ID": "x"}
    process = subprocess.Popen([paths["WRAPPER"], "slow"], env=env, stdout=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 10
    while "apt-get slow" not in (Path(paths["LOG"]).read_text() if Path(paths["LOG"]).exists() else ""):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while "systemctl stop" not in (calls := Path(paths["LOG"]).read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)           # the stand-in's sleep: systemd would stop the unit
    process.wait(timeout=10)
    assert re.search(r"systemctl stop spbot-apt-get-\d+", calls), calls


def test_outside_systemd_the_tool_simply_runs(tmp_path):
    paths = stand_ins(tmp_path)
    env = {"PATH": paths["PATH"], "SPBOT_OUTSIDE_PATH": paths["SPBOT_OUTSIDE_PATH"]}
    result = subprocess.run([paths["WRAPPER"], "update"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 3
    assert Path(paths["LOG"]).read_text().splitlines() == ["apt-get update DEBIAN_FRONTEND="]
