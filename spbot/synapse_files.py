"""The files `synapse.app.homeserver --generate-config` writes for a new homeserver, written directly: the
config's base (paths and secrets), the server's signing key and its log config. Generating them costs
~1.8 s of CPU (it imports all of Synapse), paid by every `spbot dev up` on a fresh state and by each of the
~30 homeservers a test run makes. spbot/devstack.py adds the loopback settings on top."""
from __future__ import annotations

import base64
import secrets
from pathlib import Path

import yaml
from nacl.signing import SigningKey


def write_new_homeserver(directory: Path, server_name: str) -> dict:
    """The base config of a homeserver in `directory` (its key and log config written beside it)."""
    directory.mkdir(parents=True, exist_ok=True)
    file_name = server_name.replace(":", "_")
    signing_key = directory / f"{file_name}.signing.key"
    log_config = directory / f"{file_name}.log.config"
    _write_signing_key(signing_key)
    log_config.write_text(yaml.safe_dump(_log_config(directory / "homeserver.log")))
    return {
        "server_name": server_name,
        "pid_file": str(directory / "homeserver.pid"),
        "log_config": str(log_config),
        "media_store_path": str(directory / "media_store"),
        "signing_key_path": str(signing_key),
        "registration_shared_secret": secrets.token_urlsafe(32),
        "macaroon_secret_key": secrets.token_urlsafe(32),
        "form_secret": secrets.token_urlsafe(32),
        "report_stats": False,
    }


def _write_signing_key(path: Path) -> None:
    """Synapse's format: `ed25519 <version> <seed, unpadded base64>`, one line."""
    seed = base64.b64encode(SigningKey.generate().encode()).decode().rstrip("=")
    version = "a_" + secrets.token_hex(2)
    path.write_text(f"ed25519 {version} {seed}\n")
    path.chmod(0o600)


def _log_config(log_file: Path) -> dict:
    """As generated: INFO and up to `homeserver.log`, buffered (warnings flushed at once)."""
    return {
        "version": 1,
        "formatters": {"precise": {"format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                                             "%(request)s - %(message)s"}},
        "handlers": {
            "file": {"class": "logging.handlers.TimedRotatingFileHandler", "formatter": "precise",
                     "filename": str(log_file), "when": "midnight", "backupCount": 3, "encoding": "utf8"},
            "buffer": {"class": "synapse.logging.handlers.PeriodicallyFlushingMemoryHandler",
                       "target": "file", "capacity": 10, "flushLevel": 30, "period": 5},
        },
        "loggers": {"synapse.storage.SQL": {"level": "INFO"}},
        "root": {"level": "INFO", "handlers": ["buffer"]},
        "disable_existing_loggers": False,
    }
