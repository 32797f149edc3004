"""A real Synapse on loopback and the accounts, room and bot process around it: the dev stack behind
`deploy/synapse-dev/up` and `down`, and the homeserver the test suite starts once per session."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from .synapse_files import write_new_homeserver
from .system.children import read_stat

RATE_LIMIT_OFF = {"per_second": 1000, "burst_count": 1000}
_transport: httpx.HTTPTransport | None = None


def http(**options) -> httpx.Client:
    """An HTTP client for the dev tools' requests to a loopback homeserver, on one transport for the
    process: `httpx.get` and every new `httpx.Client` build an SSL context with the system's CA
    certificates (~25 ms of CPU), and a test run registers, logs in and polls some two thousand times."""
    global _transport
    if _transport is None:
        _transport = httpx.HTTPTransport()
    return httpx.Client(transport=_transport, timeout=30, **options)


def alive(pid: int) -> bool:
    """Whether a process runs; reaps it first if it is an exited child of ours. An exited process that
    another one has not reaped yet (a zombie: the bot of a stack started in a test's own process, stopped
    by `spbot dev restart`) is not running either: waiting for it cost that restart its whole 20 s."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    stat = read_stat(pid)
    return stat is None or stat.state != "Z"


def running_pid(pid_path: Path) -> int | None:
    """The pid written in `pid_path`, if that process still runs."""
    try:
        pid = int(pid_path.read_text())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Synapse:
    """One Synapse homeserver (SQLite, 127.0.0.1 only) living in `directory`. With `federation_port`
    it federates with others like it on loopback: its server name is localhost:<that port>, where it
    listens for peers over TLS with a self-signed certificate (peers do not check it)."""

    def __init__(self, directory: Path, port: int, server_name: str = "localhost",
                 federation_port: int | None = None):
        self.dir = Path(directory)
        self.port = port
        self.federation_port = federation_port
        self.server_name = f"localhost:{federation_port}" if federation_port else server_name
        self.config_path = self.dir / "homeserver.yaml"
        self.pid_path = self.dir / "synapse.pid"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def shared_secret(self) -> str:
        return yaml.safe_load(self.config_path.read_text())["registration_shared_secret"]

    def configure(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.config_path.exists():
            config = yaml.safe_load(self.config_path.read_text())
        else:
            config = write_new_homeserver(self.dir, self.server_name)
        config.update(self._settings(config))
        if self.federation_port:
            config.update(self._federation_settings(config))
        self.config_path.write_text(yaml.safe_dump(config))

    def _federation_settings(self, config: dict) -> dict:
        """What two loopback homeservers need to federate (measured: see the field notes)."""
        cert, key = self_signed_certificate(self.dir)
        generous = {"window_size": 1000, "sleep_limit": 1000, "sleep_delay": 1, "reject_limit": 10000,
                    "concurrent": 100}
        config.pop("federation_domain_whitelist", None)
        return {
            "listeners": config["listeners"] + [{
                "port": self.federation_port, "bind_addresses": ["127.0.0.1"], "type": "http",
                "tls": True, "x_forwarded": False,
                "resources": [{"names": ["federation"], "compress": False}]}],
            "tls_certificate_path": str(cert), "tls_private_key_path": str(key),
            "federation_verify_certificates": False,
            "ip_range_whitelist": ["127.0.0.1"],
            "rc_federation": generous,
        }

    def _settings(self, config: dict) -> dict:
        return {
            "listeners": [{"port": self.port, "bind_addresses": ["127.0.0.1"], "type": "http",
                           "tls": False, "x_forwarded": False,
                           "resources": [{"names": ["client"], "compress": False}]}],
            "database": {"name": "sqlite3", "args": {"database": str(self.dir / "homeserver.db")}},
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            **({} if self.federation_port else {"federation_domain_whitelist": []}),
            "enable_registration": True,
            "registration_requires_token": True,
            "registration_shared_secret": config.get("registration_shared_secret")
                                          or secrets.token_urlsafe(32),
            "report_stats": False,
            # A loopback homeserver for development and tests: a password hash costs 1 ms of CPU instead
            # of Synapse's default 235 ms (2^12 rounds); a test run logs in and registers ~600 times.
            "bcrypt_rounds": 4,
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            "rc_message": RATE_LIMIT_OFF,
            "rc_registration": RATE_LIMIT_OFF,
            "rc_joins": {"local": RATE_LIMIT_OFF, "remote": RATE_LIMIT_OFF},
            "rc_login": {"address": RATE_LIMIT_OFF, "account": RATE_LIMIT_OFF,
                         "failed_attempts": RATE_LIMIT_OFF},
            "rc_room_creation": RATE_LIMIT_OFF,
            "rc_key_requests": RATE_LIMIT_OFF,
            "rc_admin_redaction": RATE_LIMIT_OFF,
            "rc_invites": {"per_room": RATE_LIMIT_OFF, "per_user": RATE_LIMIT_OFF,
                           "per_issuer": RATE_LIMIT_OFF},
            "rc_3pid_validation": RATE_LIMIT_OFF,
            "rc_delayed_event_mgmt": RATE_LIMIT_OFF,
        }

    def running_pid(self) -> int | None:
        return running_pid(self.pid_path)

    def start(self, timeout: float = 60.0) -> None:
        if self.running_pid():
            return self.wait_ready(timeout)
        log = open(self.dir / "synapse.out", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, start_new_session=True)
        self.pid_path.write_text(str(self.process.pid))
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Synapse exited at start; see {self.dir / 'synapse.out'}")
            try:
                # A federating server is ready for its peers once it answers /versions (not just /health).
                path = "/_matrix/client/versions" if self.federation_port else "/health"
                if http().get(f"{self.url}{path}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Synapse did not answer on {self.url} within {timeout:.0f}s")

    def stop(self) -> None:
        pid = self.running_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        for _ in range(150):
            if self.process is not None and self.process.poll() is not None:
                break
            if self.process is None and not alive(pid):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait()
            self.process = None
        self.pid_path.unlink(missing_ok=True)

    def register(self, localpart: str, password: str, admin: bool = False) -> str:
        """Create an account through the shared-secret admin API; an existing one is left as it is."""
        user_id = f"@{localpart}:{self.server_name}"
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        nonce = http().get(endpoint, timeout=10).json()["nonce"]
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(),
                                 b"admin" if admin else b"notadmin"]))
        response = http().post(endpoint, timeout=30, json={
            "nonce": nonce, "username": localpart, "password": password, "admin": admin,
            "mac": mac.hexdigest()})
        if response.status_code == 400 and response.json().get("errcode") == "M_USER_IN_USE":
            return user_id
        response.raise_for_status()
        return user_id


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1 (made once), for a homeserver's federation listener."""
    cert, key = directory / "federation.crt", directory / "federation.key"
    if cert.exists() and key.exists():
        return cert, key
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(private.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=3650))
                   .add_extension(x509.SubjectAlternativeName([
                       x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
                   .sign(private, hashes.SHA256()))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    key.chmod(0o600)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key


class PlainSession:
    """A non-E2EE client session for set-up chores (create a room, invite, join)."""

    def __init__(self, url: str, token: str):
        self.http = http(base_url=url, headers={"Authorization": f"Bearer {token}"})

    @classmethod
    def login(cls, url: str, user_id: str, password: str) -> "PlainSession":
        response = http().post(f"{url}/_matrix/client/v3/login", json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id},
            "password": password, "initial_device_display_name": "spbot dev set-up"})
        response.raise_for_status()
        return cls(url, response.json()["access_token"])

    def create_encrypted_room(self, name: str, invite: list[str]) -> str:
        response = self.http.post("/_matrix/client/v3/createRoom", json={
            "name": name, "preset": "private_chat", "invite": invite,
            "power_level_content_override": {"users_default": 0},
            "initial_state": [{"type": "m.room.encryption", "state_key": "",
                               "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]})
        response.raise_for_status()
        return response.json()["room_id"]

    def join(self, room_id: str) -> None:
        self.http.post(f"/_matrix/client/v3/join/{room_id}", json={}).raise_for_status()

    def invite(self, room_id: str, user_id: str) -> None:
        response = self.http.post(f"/_matrix/client/v3/rooms/{room_id}/invite", json={"user_id": user_id})
        if response.status_code not in (200, 403):   # 403: already in the room
            response.raise_for_status()

    def logout(self) -> None:
        self.http.post("/_matrix/client/v3/logout", json={})


def write_bot_config(path: Path, *, homeserver: str, user_id: str, password_file: Path,
                     admins: list[str], rooms: list[str], state_dir: Path,
                     extra: str = "", log_level: str = "INFO") -> Path:
    path.write_text("\n".join([
        f'homeserver = "{homeserver}"',
        f'user_id = "{user_id}"',
        f'password = {{ file = "{password_file}" }}',
        f"admins = {json.dumps(admins)}",
        f"rooms = {json.dumps(rooms)}",
        f'state_dir = "{state_dir}"',
        f'log_level = "{log_level}"',
        extra,
    ]) + "\n")
    return path


class BotProcess:
    """The bot as a real process: `spbot run --config …`, its log in a file."""

    def __init__(self, config_path: Path, log_path: Path, env: dict | None = None,
                 cwd: Path | None = None, argv: list[str] | None = None):
        self.cwd = cwd
        self.argv = argv or [sys.executable, "-m", "spbot", "run"]     # then --config PATH
        self.config_path = Path(config_path)
        self.log_path = Path(log_path)
        self.pid_path = self.log_path.with_suffix(".pid")
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [*self.argv, "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.cwd,
            env=self.env if self.env is not None else os.environ.copy())
        self.pid_path.write_text(str(self.process.pid))

    def running_pid(self) -> int | None:
        return running_pid(self.pid_path)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        pid = self.running_pid()
        if pid is None:
            return None
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None:
                if self.process.poll() is not None:
                    break
            elif not alive(pid):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        code = self.process.wait() if self.process is not None else None
        self.process = None
        self.pid_path.unlink(missing_ok=True)
        return code

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# What a snapshot of the bot's state directory holds (a server snapshot, a backup of /var/lib/spbot); the
# test plugin's marks.txt is left out, since it counts what ran.
BOT_STATE = ("spbot.db", "spbot.db-wal", "spbot.db-shm", "credentials.json", "crypto.key", "crypto",
             "cross_signing.json")


def copy_bot_state(source: Path, target: Path, names: tuple[str, ...] = BOT_STATE) -> None:
    """`target`'s bot state replaced by `source`'s (of a stopped bot), as a snapshot restore would."""
    target.mkdir(exist_ok=True)
    for name in names:
        old = target / name
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink(missing_ok=True)
        if (source / name).is_dir():
            shutil.copytree(source / name, old)
        elif (source / name).exists():
            shutil.copy2(source / name, old)
