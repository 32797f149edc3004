"""The bot's own cross-signing keys at rest: a master key, a self-signing key and a user-signing key, their
seeds in `<state_dir>/cross_signing.json` (0600, written before they are uploaded; a reset writes
`cross_signing.pending.json` first). repr shows public keys only."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..logs import get_logger
from ..system.private_files import write_private_json
from .errors import StateFileError
from .signing import Ed25519Key, cross_signing_key_json, decode_b64, encode_b64

log = get_logger(__name__)

STATE_FILE = "cross_signing.json"
PENDING_FILE = "cross_signing.pending.json"
STATE_VERSION = 1


class OwnKeys:
    """The three private cross-signing keys of one account. repr shows public keys only."""

    def __init__(self, user_id: str, master: Ed25519Key, self_signing: Ed25519Key,
                 user_signing: Ed25519Key, created: float | None = None):
        self.user_id = user_id
        self.master, self.self_signing, self.user_signing = master, self_signing, user_signing
        self.created = created if created is not None else time.time()

    @classmethod
    def generate(cls, user_id: str) -> "OwnKeys":
        return cls(user_id, Ed25519Key.generate(), Ed25519Key.generate(), Ed25519Key.generate())

    def upload_body(self) -> dict:
        return {
            "master_key": cross_signing_key_json(self.user_id, "master", self.master),
            "self_signing_key": cross_signing_key_json(self.user_id, "self_signing", self.self_signing,
                                                       signed_by=self.master),
            "user_signing_key": cross_signing_key_json(self.user_id, "user_signing", self.user_signing,
                                                       signed_by=self.master),
        }

    def to_json(self) -> dict:
        return {"version": STATE_VERSION, "user_id": self.user_id, "created": self.created,
                "master_key": self.master.public_key,
                "self_signing_key": self.self_signing.public_key,
                "user_signing_key": self.user_signing.public_key,
                "master_seed": encode_b64(self.master.seed),
                "self_signing_seed": encode_b64(self.self_signing.seed),
                "user_signing_seed": encode_b64(self.user_signing.seed)}

    @classmethod
    def from_json(cls, data: Any, where: Path) -> "OwnKeys":
        try:
            if data.get("version") != STATE_VERSION:
                raise StateFileError(f"{where}: unknown version {data.get('version')!r}")
            keys = {name: Ed25519Key(decode_b64(data[f"{name}_seed"]))
                    for name in ("master", "self_signing", "user_signing")}
            for name, key in keys.items():
                if data.get(f"{name}_key") != key.public_key:
                    raise StateFileError(f"{where}: the {name} seed does not match its public key; "
                                         "the file is damaged")
            return cls(str(data["user_id"]), keys["master"], keys["self_signing"], keys["user_signing"],
                       float(data.get("created") or 0))
        except StateFileError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError):
            raise StateFileError(f"{where}: not a valid cross-signing state file") from None

    def __repr__(self) -> str:
        return f"OwnKeys({self.user_id}, master={self.master.public_key})"


def load_keys(path: Path, user_id: str) -> OwnKeys | None:
    """The stored keys, None if there is no file. Loosened permissions are tightened back to 0600."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"cannot read {path} ({exc.strerror})") from None
    if path.stat().st_mode & 0o077:
        log.warning("cross_signing_file_permissions_fixed", path=str(path))
        path.chmod(0o600)
    try:
        data = json.loads(text)
    except ValueError:
        raise StateFileError(f"{path}: not valid JSON; the file is damaged") from None
    keys = OwnKeys.from_json(data, path)
    if keys.user_id != user_id:
        raise StateFileError(f"{path} holds the keys of {keys.user_id}, not {user_id}: "
                             "wrong state directory?")
    return keys


def save_keys(path: Path, keys: OwnKeys) -> None:
    write_private_json(Path(path), keys.to_json(), indent=1)
