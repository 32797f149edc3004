"""Two real Synapses federating on loopback, for the media upkeep tests: the family's homeserver (where a
bot runs) and a peer whose media the family's server fetches and caches as remote media. Settings as
measured in /work/shared/FIELD-NOTES.md ("Two Synapses federating on loopback"): `localhost:<federation
port>` server names, a TLS federation listener with one self-signed certificate (trustme), certificates
not verified, loopback allowed, no key servers, high federation rate limits.

Also the systemctl stand-in that really restarts the family's homeserver, so `!service restart synapse`
cuts the chat off and the bot has to notice it coming back."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import trustme

from spbot.devsandbox import service_world
from spbot.devstack import RATE_LIMIT_OFF, Synapse, free_port

FEDERATION_LIMITS = {"window_size": 1000, "sleep_limit": 1000, "sleep_delay": 1, "reject_limit": 10000,
                     "concurrent": 100}
UNIT = "matrix-synapse.service"
ROOT = Path(__file__).resolve().parent.parent


def certificate(directory: Path) -> tuple[Path, Path]:
    """One self-signed certificate for localhost and 127.0.0.1 that both servers serve."""
    cert, key = directory / "federation.crt", directory / "federation.key"
    if not cert.exists():
        leaf = trustme.CA().issue_cert("localhost", "127.0.0.1")
        leaf.private_key_pem.write_to_path(str(key))
        leaf.cert_chain_pems[0].write_to_path(str(cert))
    return cert, key


class FederatingSynapse(Synapse):
    """A test Synapse with a federation listener (TLS) next to its client listener."""

    def __init__(self, directory: Path, tls: tuple[Path, Path]):
        super().__init__(directory, free_port(), federation_port=free_port())
        self.tls = tls

    @property
    def media_store(self) -> Path:
        return self.dir / "media_store"

    def _settings(self, config: dict) -> dict:
        settings = super()._settings(config)
        settings.update(media_store_path=str(self.media_store), rc_media_create=RATE_LIMIT_OFF)
        return settings

    def _federation_settings(self, config: dict) -> dict:
        """The shared federation settings (spbot/devstack.py), with this module's trustme certificate."""
        settings = super()._federation_settings(config)
        cert, key = self.tls
        settings.update(tls_certificate_path=str(cert), tls_private_key_path=str(key),
                        rc_federation=FEDERATION_LIMITS)
        return settings


def upload(server: Synapse, token: str, data: bytes, name: str) -> str:
    """Upload `data` as a user of `server`; its mxc:// URI."""
    response = httpx.post(f"{server.url}/_matrix/media/v3/upload", params={"filename": name}, content=data,
                          headers={"Authorization": f"Bearer {token}", "Content-Type": "image/png"}, timeout=30)
    response.raise_for_status()
    return response.json()["content_uri"]


def download(server: Synapse, token: str, mxc: str) -> bytes:
    """Fetch `mxc` through `server` (authenticated media): a remote one is then in its remote cache."""
    origin, media_id = mxc.removeprefix("mxc://").split("/", 1)
    response = httpx.get(f"{server.url}/_matrix/client/v1/media/download/{origin}/{media_id}",
                         headers={"Authorization": f"Bearer {token}"}, timeout=60)
    response.raise_for_status()
    return response.content


def login(server: Synapse, user_id: str, password: str) -> str:
    response = httpx.post(f"{server.url}/_matrix/client/v3/login", timeout=30, json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id}, "password": password})
    response.raise_for_status()
    return response.json()["access_token"]


def files_under(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file()) if path.exists() else 0


# -- a systemctl that really restarts the homeserver ---------------------------------------------------

def restarting_systemctl(argv: list[str], base: str) -> int:
    """The services stand-in (spbot/devsandbox/service_world.py), except that stop, start and restart of
    matrix-synapse.service stop and start the test homeserver whose directory and port are in
    `homeserver.txt` next to the stand-ins: as systemctl does, it returns once Synapse answers again."""
    names = argv[argv.index("--") + 1:] if "--" in argv else []
    action = argv[0] if argv else ""
    if UNIT in names and action in ("stop", "start", "restart"):
        directory, port, server_name = (Path(base).parent / "homeserver.txt").read_text().split()
        server = Synapse(Path(directory), int(port), server_name)
        if action in ("stop", "restart"):
            server.stop()
        if action in ("start", "restart"):
            server.start()
    return service_world.systemctl(argv, base)


def detached(server: Synapse, action: str) -> None:
    """Start or stop `server` from a short-lived process, so the Synapse process is nobody's child here:
    the systemctl stand-in (another short-lived process) can then stop it and start the next one."""
    subprocess.run([sys.executable, "-m", "tests.media_homeservers", action, str(server.dir), str(server.port),
                    server.server_name], check=True, cwd=ROOT, timeout=120)


if __name__ == "__main__":
    what, where, port, name = sys.argv[1:5]
    homeserver = Synapse(Path(where), int(port), name)
    homeserver.start() if what == "start" else homeserver.stop()
