"""The dev stack's system tools: apt-get, systemctl, journalctl, nixos-rebuild, reboot, and (in
volumes.py) findmnt and resize2fs.

They are FakeBin executables (spbot/devsandbox/fakebin.py: each call recorded in calls.jsonl) whose one
rule hands the call to a handler here. The handlers answer in the real tools' formats, so the bot's
parsers see what they would see on a server, but they change nothing on this machine: units live in
`units.json`, the reboot flag and boot id in files of the sandbox, and a "reboot" restarts the bot.
Read-only questions stay real where that is harmless: `apt-get -s dist-upgrade` asks the real apt-get
(a simulation never changes anything), while `apt-get update` does not refresh the host's lists.

Every answer that stands in for a change starts with the SANDBOX_LINE, so a log shown in chat says so.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from .fakebin import FakeBin, Rule

SANDBOX_LINE = "[dev sandbox] simulated by a stand-in: nothing on this machine was changed"
TOOLS = {
    "apt-get": "apt_get", "systemctl": "systemctl", "journalctl": "journalctl",
    "nixos-rebuild": "nixos_rebuild", "reboot": "reboot", "xfs_growfs": "grow_fs", "dpkg": "dpkg",
    "findmnt": "spbot.devsandbox.volumes:findmnt", "resize2fs": "spbot.devsandbox.volumes:resize2fs",
}
# Units every dev stack shows: two that mirror real processes of the stack, two pretend ones.
REAL_UNITS = {"matrix-synapse.service": "synapse/synapse.pid", "spbot.service": "bot.pid"}
PRETEND_UNITS = ["nginx.service", "nextcloud-cron.service"]
UNITS = list(REAL_UNITS) + PRETEND_UNITS
# Shown by the upgrade stand-in when the real apt-get has nothing pending (or is not installed).
DEMO_UPGRADES = [("openssl", "3.0.15-1~deb12u1", "3.0.17-1~deb12u2"),
                 ("libssl3", "3.0.15-1~deb12u1", "3.0.17-1~deb12u2"),
                 ("tzdata", "2024b-0+deb12u1", "2025b-0+deb12u1"),
                 ("linux-image-amd64", "6.1.119-1", "6.1.140-1")]


class Sandbox:
    """The sandbox's files under the dev stack's state directory."""

    def __init__(self, state: Path):
        self.state = Path(state)
        self.root = self.state / "sandbox"
        self.bins = FakeBin(self.root)
        self.units_file = self.root / "units.json"
        self.authorized_keys = self.root / "root" / ".ssh" / "authorized_keys"
        self.reboot_required = self.root / "run" / "reboot-required"
        self.reboot_required_pkgs = self.root / "run" / "reboot-required.pkgs"
        self.boot_id = self.root / "boot_id"
        self.systemd_dir = self.root / "run" / "systemd" / "system"
        self.journal_dir = self.root / "var" / "log" / "journal"
        self.log_dir = self.root / "var" / "log" / "nginx"
        self.apt_archives = self.root / "var" / "cache" / "apt" / "archives"

    @classmethod
    def of_bin_dir(cls, base: str | Path) -> "Sandbox":
        return cls(Path(base).parent.parent)

    @property
    def bin_dir(self) -> Path:
        return self.bins.dir

    def install(self) -> None:
        """Create the stand-ins and the sandbox's files; existing state (units, keys) is kept."""
        for tool, handler in TOOLS.items():
            self.bins.add(tool, [Rule(handler=handler if ":" in handler else f"{__name__}:{handler}")])
        for directory in (self.authorized_keys.parent, self.reboot_required.parent, self.systemd_dir,
                          self.journal_dir, self.log_dir, self.apt_archives):
            directory.mkdir(parents=True, exist_ok=True)
        self.authorized_keys.parent.chmod(0o700)
        if not self.authorized_keys.exists():
            self.authorized_keys.touch(mode=0o600)
        if not self.boot_id.exists():
            self.boot_id.write_text(str(uuid.uuid4()) + "\n")
        if not (self.log_dir / "access.log.1").exists():
            (self.log_dir / "access.log.1").write_text("127.0.0.1 - - GET / 200\n" * 2000)
        units = self.units()
        for unit in UNITS:
            units.setdefault(unit, {"failed": False, "since": time.time()})
        self.save_units(units)

    def units(self) -> dict[str, dict]:
        try:
            return json.loads(self.units_file.read_text())
        except (OSError, ValueError):
            return {}

    def save_units(self, units: dict[str, dict]) -> None:
        tmp = self.units_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(units, indent=1))
        tmp.replace(self.units_file)

    def set_failed(self, unit: str, failed: bool = True) -> None:
        units = self.units()
        if unit not in units:
            raise KeyError(unit)
        units[unit] = {"failed": failed, "since": time.time()}
        self.save_units(units)

    def running(self, unit: str) -> bool:
        from spbot.devstack import running_pid
        pid_file = REAL_UNITS.get(unit)
        return pid_file is None or running_pid(self.state / pid_file) is not None


# -- systemctl -------------------------------------------------------------------------------


def _stamp(when: float) -> str:
    return datetime.fromtimestamp(when, timezone.utc).strftime("%a %Y-%m-%d %H:%M:%S UTC")


def _show(box: Sandbox, unit: str) -> str:
    state = box.units().get(unit)
    if state is None:
        return f"Id={unit}\nActiveState=inactive\nSubState=dead\nLoadState=not-found\nResult=success\n"
    if state["failed"] or not box.running(unit):
        active, sub, result, since = "failed", "failed", "exit-code", ""
    else:
        active, sub, result, since = "active", "running", "success", _stamp(state["since"])
    return (f"Id={unit}\nActiveState={active}\nSubState={sub}\nLoadState=loaded\n"
            f"ActiveEnterTimestamp={since}\nMemoryCurrent={48 << 20}\nResult={result}\n")


def systemctl(argv: list[str], base: str) -> int:
    box = Sandbox.of_bin_dir(base)
    words = [a for a in argv if a != "--"]
    action = words[0] if words else ""
    names = [w for w in words[1:] if not w.startswith("-")]
    if action == "show":
        print("\n".join(_show(box, unit) for unit in names), end="")
        return 0
    if action == "list-units":
        for unit, state in box.units().items():
            if state["failed"] or not box.running(unit):
                print(f"{unit} loaded failed failed {unit.split('.')[0]} (dev sandbox)")
        return 0
    if action in ("restart", "start", "stop", "reset-failed"):
        for unit in names:
            if unit not in box.units():
                print(f"Failed to {action} {unit}: Unit {unit} not found.", file=sys.stderr)
                return 5
            box.set_failed(unit, action == "stop")
        return 0
    if action == "reboot":
        return _reboot(box)
    if action == "is-system-running":
        print("running")
        return 0
    print(f"systemctl (dev sandbox): {action} is not simulated", file=sys.stderr)
    return 1


def reboot(argv: list[str], base: str) -> int:
    return _reboot(Sandbox.of_bin_dir(base))


def _reboot(box: Sandbox) -> int:
    """A new boot id, no pending reboot, and the bot restarted a moment later (as after a boot)."""
    box.boot_id.write_text(str(uuid.uuid4()) + "\n")
    box.reboot_required.unlink(missing_ok=True)
    box.reboot_required_pkgs.unlink(missing_ok=True)
    subprocess.Popen([sys.executable, "-m", "spbot", "dev", "restart", "--state", str(box.state),
                      "--after", "2", "--no-wait"], start_new_session=True, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return 0


# -- journalctl ------------------------------------------------------------------------------


def journalctl(argv: list[str], base: str) -> int:
    if "--disk-usage" in argv:
        print("Archived and active journals take up 96.0M in the file system.")
    elif any(a.startswith("--vacuum") for a in argv):
        print(SANDBOX_LINE)
        print("Vacuuming done, freed 0B of archived journals from /var/log/journal.")
    elif "-u" in argv:
        unit = argv[argv.index("-u") + 1] if argv.index("-u") + 1 < len(argv) else "?"
        print(f"{_stamp(time.time())} dev-sandbox systemd[1]: {unit}: simulated journal line")
    return 0


# -- apt-get ---------------------------------------------------------------------------------


def real_tool(tool: str, base: str) -> str | None:
    """The real tool on PATH, skipping the sandbox's own directory."""
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if p and Path(p).resolve() != Path(base).resolve())
    return shutil.which(tool, path=path)


def _pending(base: str) -> list[tuple[str, str, str]]:
    """What the host's apt would upgrade (a harmless simulation), or the demo list."""
    real = real_tool("apt-get", base)
    if real:
        try:
            out = subprocess.run([real, "-s", "dist-upgrade"], capture_output=True, text=True,
                                 timeout=120, env={**os.environ, "LC_ALL": "C"}).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        found = []
        for line in out.splitlines():
            parts = line.split()
            if line.startswith("Inst ") and len(parts) >= 4 and parts[2].startswith("["):
                found.append((parts[1], parts[2].strip("[]"), parts[3].lstrip("(")))
        if found:
            return found
    return DEMO_UPGRADES


def dpkg(argv: list[str], base: str) -> int:
    """Only `dpkg --configure -a` is asked of it (after an interrupted upgrade): nothing to finish here."""
    print(SANDBOX_LINE)
    return 0


def apt_get(argv: list[str], base: str) -> int:
    words = [a for i, a in enumerate(argv) if a != "-o" and (i == 0 or argv[i - 1] != "-o")]
    if "update" in words:
        print(SANDBOX_LINE + " (the host's package lists were not refreshed)")
        print("Hit:1 http://deb.debian.org/debian bookworm InRelease")
        print("Reading package lists...")
        return 0
    if "-s" in words or "--simulate" in words:
        real = real_tool("apt-get", base)
        if real:
            os.execv(real, [real, *argv])
        for name, old, new in DEMO_UPGRADES:
            print(f"Inst {name} [{old}] ({new} Debian:12/stable [amd64])")
        print(f"{len(DEMO_UPGRADES)} upgraded, 0 newly installed, 0 to remove and 0 not upgraded.")
        return 0
    if {"clean", "autoclean", "autoremove"} & set(words):
        print(SANDBOX_LINE)
        return 0
    if "dist-upgrade" in words or "upgrade" in words:
        return _simulated_upgrade(Sandbox.of_bin_dir(base), _pending(base))
    print(f"E: the dev sandbox's apt-get does not simulate {' '.join(words)}", file=sys.stderr)
    return 100


def _simulated_upgrade(box: Sandbox, pending: list[tuple[str, str, str]]) -> int:
    # A live log worth watching, but a whole simulated upgrade within about 20 seconds.
    lines = 10 + 4 * len(pending)
    delay = min(float(os.environ.get("SPBOT_SANDBOX_LINE_DELAY", "0.4")), 20.0 / lines)

    def say(line: str) -> None:
        print(line, flush=True)
        time.sleep(delay)

    say(SANDBOX_LINE)
    say("Reading package lists...")
    say("Building dependency tree...")
    say("Calculating upgrade...")
    say("The following packages will be upgraded:")
    say("  " + " ".join(name for name, _, _ in pending))
    say(f"{len(pending)} upgraded, 0 newly installed, 0 to remove and 0 not upgraded.")
    for n, (name, _, new) in enumerate(pending, 1):
        say(f"Get:{n} http://deb.debian.org/debian bookworm/main amd64 {name} amd64 {new} [1,024 kB]")
    for name, old, new in pending:
        say(f"Preparing to unpack .../{name}_{new}_amd64.deb ...")
        say(f"Unpacking {name} ({new}) over ({old}) ...")
    for name, _, new in pending:
        say(f"Setting up {name} ({new}) ...")
    if any(name.startswith("linux-image") for name, _, _ in pending):
        box.reboot_required.write_text("*** System restart required ***\n")
        box.reboot_required_pkgs.write_text("linux-image-amd64\n")
    say(SANDBOX_LINE)
    return 0


# -- nixos-rebuild, filesystems --------------------------------------------------------------


def nixos_rebuild(argv: list[str], base: str) -> int:
    print(SANDBOX_LINE)
    print("building the system configuration...")
    if "switch" in argv:
        print("activating the configuration...")
        print("setting up /etc...")
    return 0


def grow_fs(argv: list[str], base: str) -> int:
    print(SANDBOX_LINE)
    target = argv[-1] if argv else "?"
    print(f"The filesystem on {target} is now 2621440 (4k) blocks long.")
    return 0
