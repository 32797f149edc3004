"""`deploy/synapse-dev/up`, `down` and `restart`: the whole dev stack on loopback, idempotent.

up: Synapse (port kept in state, and checked to be this stack's own), accounts @alice and @bob
(admins), @carol (family member), the bot (a homeserver admin), one encrypted room with all of them,
a local restic repository backing up the stack's own Synapse and a "family files" folder, a sandbox
of the system tools (spbot/devsandbox/: nothing the bot does changes this machine), optionally the
simulated cloud; then the bot process; returns once the bot answers !ping; writes state/dev.json.

The bot's config is generated (state/bot.toml) from what up knows, with the developer's own
deploy/synapse-dev/bot.local.toml merged on top: it is never overwritten, so edits survive every up,
and `restart` applies them. down stops everything; up again brings back the same everything."""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Callable

import psutil

from .chatclient import ChatClient, quiet_nio
from .devsandbox import cloud as cloudsim
from .devsandbox.sqlite_dump import dump as sqlite_dump
from .devsandbox.standins import UNITS, Sandbox
from .devsandbox.tomlout import dumps, merged
from .devsandbox.volumes import VolumeBox
from .devstack import BotProcess, PlainSession, Synapse, free_port, port_is_free, running_pid

ROOT = Path(__file__).resolve().parent.parent
DEV_DIR = ROOT / "deploy" / "synapse-dev"
STATE = DEV_DIR / "state"
LOCAL_CONFIG = DEV_DIR / "bot.local.toml"
PEOPLE = [("alice", True), ("bob", True), ("carol", False)]
BOT = "spbot"
# Plugins adding "a stand-in answered" to the replies the sandbox and the simulated cloud produce.
SYSTEM_NOTICE, CLOUD_NOTICE = "spbot.devsandbox.system_notice", "spbot.devsandbox.cloud_notice"
BACKUP_SCHEDULE = "0 13 * * *"        # daily at lunchtime, when a dev machine is likely on
FAMILY_FILES = {"photos/2026-summer/README.txt": "Photos from the summer holiday.\n",
                "documents/insurance.txt": "Policy 1234-5678, renews every March.\n",
                "documents/recipes/grandmas-cake.md": "# Grandma's cake\n250 g flour, 3 eggs…\n",
                "notes/wifi-for-guests.txt": "Network: family-guest\n"}

Say = Callable[[str], None]


def _load(state: Path) -> dict:
    path = state / "dev.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _secrets(state: Path) -> dict:
    path = state / "passwords.json"
    if path.exists():
        return json.loads(path.read_text())
    passwords = {name: secrets.token_urlsafe(12) for name, _ in PEOPLE + [(BOT, True)]}
    path.write_text(json.dumps(passwords))
    path.chmod(0o600)
    return passwords


def _quiet(_: str) -> None:
    pass


def up(state: Path = STATE, port: int | None = None, *, sandbox: bool = True,
       simulate_cloud: bool = False, local_config: Path | None = None, say: Say = _quiet,
       fleet: bool = False) -> dict:
    state.mkdir(parents=True, exist_ok=True)
    previous = _load(state)
    if fleet:                     # two federating homeservers, a bot on each (spbot/devfleet.py)
        from . import devfleet
        dev = devfleet.up(state, previous, say)
        (state / "dev.json").write_text(json.dumps(dev, indent=2))
        (state / "dev.json").chmod(0o600)
        return dev
    port = choose_port(state, port or previous.get("port"), say)
    synapse = Synapse(state / "synapse", port)
    synapse.configure()
    synapse.start()
    passwords = _secrets(state)
    users = [{"user_id": synapse.register(name, passwords[name], admin=False),
              "password": passwords[name], "admin": admin} for name, admin in PEOPLE]
    bot_user = synapse.register(BOT, passwords[BOT], admin=True)
    room_id = previous.get("room_id") or _create_room(synapse.url, users, bot_user)
    dev = {"homeserver": synapse.url, "server_name": synapse.server_name, "bot_user_id": bot_user,
           "room_id": room_id, "users": users, "port": port, "sandbox": sandbox,
           "simulate_cloud": simulate_cloud, "synapse_pid": synapse.running_pid(),
           "local_config": str(local_config or LOCAL_CONFIG)}
    _setup_backups(state)
    if sandbox:
        Sandbox(state).install()
    _cloud(state, simulate_cloud)
    VolumeBox(state).attach(sandbox and simulate_cloud)   # the cloud's volume, "mounted" in the sandbox
    (state / "dev.json").write_text(json.dumps(dev, indent=2))
    (state / "dev.json").chmod(0o600)
    bot = _start_bot(state, dev, passwords[BOT])
    asyncio.run(_wait_answering(state, dev, bot))
    return dev


# -- the port: this stack's own Synapse, or a free one ------------------------------------------


def choose_port(state: Path, wanted: int | None, say: Say = _quiet) -> int:
    """`wanted` (the port kept in state) if it is free or this stack's Synapse answers there;
    otherwise a free port, said aloud: another checkout's stack may have taken it meanwhile."""
    if wanted is None:
        return 8008 if port_is_free(8008) else free_port()
    if port_is_free(wanted) or _ours_listens(state / "synapse", wanted):
        return wanted
    port = free_port()
    say(f"port {wanted} is in use by something that is not this stack's Synapse (another checkout's "
        f"dev stack?); using port {port} instead")
    return port


def _ours_listens(synapse_dir: Path, port: int) -> bool:
    pid = running_pid(synapse_dir / "synapse.pid")
    if pid is None:
        return False
    try:
        process = psutil.Process(pid)
        if str(synapse_dir / "homeserver.yaml") not in process.cmdline():
            return False
        return any(c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
                   for c in process.net_connections(kind="inet"))
    except (psutil.Error, OSError):
        return False


def _create_room(url: str, users: list[dict], bot_user: str) -> str:
    alice, *others = users
    owner = PlainSession.login(url, alice["user_id"], alice["password"])
    room_id = owner.create_encrypted_room("Server admin", [u["user_id"] for u in others] + [bot_user])
    for user in others:
        member = PlainSession.login(url, user["user_id"], user["password"])
        member.join(room_id)
        member.logout()
    owner.logout()
    return room_id


# -- backups of the stack's own services --------------------------------------------------------


def _setup_backups(state: Path) -> None:
    """A restic repository with its password file, sample family files, and a first Synapse dump."""
    password = state / "restic-password"
    if not password.exists():
        password.write_text(secrets.token_urlsafe(24) + "\n")
        password.chmod(0o600)
    repo = state / "restic-repo"
    if not (repo / "config").exists():
        try:
            subprocess.run(["restic", "init", "--repo", str(repo), "--password-file", str(password)],
                           check=True, capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            raise RuntimeError("restic is not installed: run deploy/bootstrap (or apt-get install restic)")
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"restic init {repo} failed: {exc.stderr.strip()[-300:]}")
    family = state / "family-files"
    for name, text in FAMILY_FILES.items():
        path = family / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    synapse = state / "synapse"
    (synapse / "media_store").mkdir(parents=True, exist_ok=True)
    if not (state / "synapse-dump" / "homeserver.db").exists():
        sqlite_dump(synapse / "homeserver.db", state / "synapse-dump" / "homeserver.db")


def _backup_section(state: Path) -> dict:
    synapse = state / "synapse"
    dump = state / "synapse-dump" / "homeserver.db"
    signing_keys = sorted(str(p) for p in synapse.glob("*.signing.key"))
    return {
        "repository": {"path": str(state / "restic-repo")},
        "password": {"file": str(state / "restic-password")},
        "schedule": BACKUP_SCHEDULE,
        "host": "dev-stack",
        "services": {
            "synapse": {"paths": [str(dump), str(synapse / "media_store"), *signing_keys],
                        "pre": [[sys.executable, "-m", "spbot.devsandbox.sqlite_dump",
                                 str(synapse / "homeserver.db"), str(dump)]]},
            "family-files": {"paths": [str(state / "family-files")]},
        },
    }


# -- the bot's config -----------------------------------------------------------------------


def _sandbox_sections(state: Path) -> dict:
    box = Sandbox(state)
    return {
        "plugins": [SYSTEM_NOTICE],
        "services": {"units": UNITS},
        "health": {"systemd_dir": str(box.systemd_dir), "failed_units_interval": 30.0},
        "upgrade": {"apt": {"reboot_required_file": str(box.reboot_required),
                            "reboot_required_pkgs": str(box.reboot_required_pkgs)},
                    "boot_id_file": str(box.boot_id), "notice_wait": 5.0},
        "cleanup": {"nix_marker": str(box.root / "etc" / "NIXOS"),
                    "journal_dir": str(box.journal_dir), "log_dirs": [str(box.log_dir)],
                    "apt_archives": str(box.apt_archives), "old_root": str(box.root / "old-root")},
        "ssh": {"authorized_keys": str(box.authorized_keys)},
    }


def bot_config(state: Path, dev: dict, password_file: Path) -> dict:
    """The generated config, with the developer's overrides merged on top."""
    config: dict = {
        "homeserver": dev["homeserver"], "user_id": dev["bot_user_id"],
        "password": {"file": str(password_file)},
        "admins": [u["user_id"] for u in dev["users"] if u["admin"]], "rooms": [dev["room_id"]],
        "state_dir": str(state / "bot"), "log_level": "INFO",
        "backup": _backup_section(state),
    }
    if dev.get("sandbox", True):
        config = merged(config, _sandbox_sections(state))
    info = _cloud_info(state) if dev.get("simulate_cloud") else None
    if info:
        config = merged(config, {"plugins": config.get("plugins", []) + [CLOUD_NOTICE],
                                 "hetzner": cloudsim.hetzner_section(state, info, dev.get("sandbox", True)),
                                 "dns": cloudsim.dns_section(state, info)})
    if dev.get("disk_alert"):
        config = merged(config, {"disk": _disk_alert_section(state)})
    local = Path(dev.get("local_config") or LOCAL_CONFIG)
    if local.exists():
        try:
            config = merged(config, tomllib.loads(local.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{local}: {exc}; the bot keeps running as it was") from None
    return config


def bot_env(state: Path, dev: dict) -> dict[str, str]:
    env = os.environ.copy()
    if dev.get("sandbox", True):
        env["PATH"] = f"{Sandbox(state).bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def _bot(state: Path, dev: dict) -> BotProcess:
    return BotProcess(state / "bot.toml", state / "bot.log", env=bot_env(state, dev), cwd=ROOT)


def _write_config(state: Path, dev: dict, password: str | None = None) -> bool:
    """Write state/bot.toml; True when it changed."""
    password_file = state / "bot.password"
    if password is not None:
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
    text = ("# Generated by spbot dev up: edits here are lost. Put yours in "
            f"{dev.get('local_config') or LOCAL_CONFIG}\n" + dumps(bot_config(state, dev, password_file)))
    path = state / "bot.toml"
    old = path.read_text() if path.exists() else None
    path.write_text(text)
    path.chmod(0o600)
    return old != text


def _start_bot(state: Path, dev: dict, password: str) -> BotProcess:
    changed = _write_config(state, dev, password)
    bot = _bot(state, dev)
    if bot.running_pid() is not None and changed:
        bot.stop()
    if bot.running_pid() is None:
        bot.start()
    return bot


async def _wait_answering(state: Path, dev: dict, bot: BotProcess, timeout: float = 90.0) -> None:
    alice, _ = dev["users"][0], quiet_nio()
    # Its own device, not the console's: a console may be open while up or restart runs.
    client = ChatClient(dev["homeserver"], alice["user_id"], alice["password"],
                        state / "console" / "up-check" / alice["user_id"], device_name="spbot dev up")
    await client.start()
    try:
        _check_running(bot, dev)
        await client.wait_joined(dev["room_id"], dev["bot_user_id"], timeout)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await client.command(dev["room_id"], "!ping", dev["bot_user_id"], timeout=10)
                return
            except asyncio.TimeoutError:
                _check_running(bot, dev)
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"the bot did not answer; see {state / 'bot.log'}")
    finally:
        await client.stop()


def _check_running(bot: BotProcess, dev: dict) -> None:
    if bot.running_pid() is None:
        raise RuntimeError("the bot stopped:\n" + "\n".join(bot.log_text().splitlines()[-5:]) +
                           f"\n(state/bot.toml is generated: put your settings in "
                           f"{dev.get('local_config') or LOCAL_CONFIG}, then spbot dev restart)")


# -- restart, down, fault injection ---------------------------------------------------------


def restart(state: Path = STATE, after: float = 0.0, wait: bool = True) -> dict:
    """Regenerate the bot's config (picking up bot.local.toml) and restart the bot alone."""
    time.sleep(after)
    dev = _load(state)
    if not dev or running_pid(state / "synapse" / "synapse.pid") is None:
        raise RuntimeError("the dev stack is not running: start it with deploy/synapse-dev/up")
    _write_config(state, dev)
    bot = _bot(state, dev)
    bot.stop()
    bot.start()
    if wait:
        asyncio.run(_wait_answering(state, dev, bot))
    return dev


def fail_unit(state: Path, unit: str, failed: bool = True) -> str:
    from .system.services import normalize_unit
    name = normalize_unit(unit)
    try:
        Sandbox(state).set_failed(name, failed)
    except KeyError:
        raise RuntimeError(f"{name} is not a unit of the dev sandbox; its units: {', '.join(UNITS)}")
    return name


def _mount_of(path: Path) -> str:
    path = path.resolve()
    while not os.path.ismount(path):
        path = path.parent
    return str(path)


def _disk_alert_section(state: Path) -> dict:
    """A warning threshold just under the real use of the filesystem holding the state directory:
    the bot's next sample raises a real disk alert, without filling anything."""
    used = psutil.disk_usage(str(state)).percent
    warn = max(round(used - 1, 1), 0.5)
    return {"sample_interval": 10.0, "mounts": {_mount_of(state): {
        "warn_percent": warn, "critical_percent": max(99.9, warn + 0.1) if warn < 99.8 else 100.0}}}


def disk_alert(state: Path, on: bool = True) -> str:
    """`spbot dev disk-alert` / `disk-ok`: provoke (or end) a disk alert, then restart the bot."""
    dev = _load(state)
    if not dev:
        raise RuntimeError(f"no {state / 'dev.json'}: start the dev stack first with deploy/synapse-dev/up")
    dev["disk_alert"] = on
    (state / "dev.json").write_text(json.dumps(dev, indent=2))
    restart(state)
    return _mount_of(state)


def _cloud_info(state: Path) -> dict | None:
    path = cloudsim.info_path(state)
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if psutil.pid_exists(info["pid"]) else None


def _cloud(state: Path, wanted: bool) -> None:
    info = _cloud_info(state)
    if info and not wanted:
        _stop_cloud(state)
    if not wanted or info:
        return
    cloudsim.info_path(state).unlink(missing_ok=True)
    log = open(state / "cloud.log", "ab")
    subprocess.Popen([sys.executable, "-m", "spbot.devsandbox.cloud", str(state)], cwd=ROOT,
                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while _cloud_info(state) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the simulated cloud did not start; see {state / 'cloud.log'}")
        time.sleep(0.1)


def _stop_cloud(state: Path) -> None:
    info = _cloud_info(state)
    if info:
        try:
            psutil.Process(info["pid"]).terminate()
            psutil.Process(info["pid"]).wait(10)
        except psutil.Error:
            pass
    cloudsim.info_path(state).unlink(missing_ok=True)


def down(state: Path = STATE) -> None:
    dev = _load(state)
    if dev.get("fleet"):
        from . import devfleet
        devfleet.down(state, dev)
    BotProcess(state / "bot.toml", state / "bot.log").stop()
    _stop_cloud(state)
    if dev:
        Synapse(state / "synapse", dev["port"]).stop()
