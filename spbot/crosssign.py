"""Cross-signing for a nio bot, done by hand: matrix-nio has no cross-signing API, but the endpoints are
plain HTTP and the signing is Ed25519 over canonical JSON.

The bot owns a master key, a self-signing key and a user-signing key (seeds in
`<state_dir>/cross_signing.json`, 0600, written before they are uploaded) and signs its own device with
the self-signing key, so that clients (Element) show its messages without "not verified by its owner".

    async with CrossSigning.from_nio(client, password=password) as xs:
        status = await xs.ensure(state_dir, client.olm.account.identity_keys)
        if status.state == "mismatch": ...   # tell the admins; never reset by itself

Other users' identities are read with `query_identity`: every signature is checked here with PyNaCl,
nothing the homeserver says about trust is taken on faith.

No secret (seeds, access token, password) ever appears in a log line, an exception message or a repr.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping
from urllib.parse import quote

import httpx
from canonicaljson import encode_canonical_json
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from .logs import get_logger, register_secret

log = get_logger(__name__)

STATE_FILE = "cross_signing.json"
PENDING_FILE = "cross_signing.pending.json"
STATE_VERSION = 1
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)

KEYS_QUERY = "/_matrix/client/v3/keys/query"
SIGNING_UPLOAD = "/_matrix/client/v3/keys/device_signing/upload"
SIGNATURES_UPLOAD = "/_matrix/client/v3/keys/signatures/upload"
DEVICES = "/_matrix/client/v3/devices"


# --- errors ------------------------------------------------------------------------------------------

class CrossSigningError(Exception):
    """Something went wrong; the message says what and what to do, and never holds a secret."""


class HomeserverError(CrossSigningError):
    """The homeserver answered with an error (or not at all)."""

    def __init__(self, message: str, status: int | None = None, errcode: str | None = None):
        super().__init__(message)
        self.status, self.errcode = status, errcode


class AuthRequired(CrossSigningError):
    """The operation needs user-interactive auth that this library cannot do (no password given, or the
    homeserver offers no password flow, e.g. with delegated auth: `url` then says where to approve)."""

    def __init__(self, message: str, url: str | None = None):
        super().__init__(message)
        self.url = url


class AuthFailed(CrossSigningError):
    """The homeserver refused the password."""


class DeviceKeysUnavailable(CrossSigningError):
    """The homeserver has no device keys for the bot's device yet (call after nio's first keys upload)."""


class DeviceKeysMismatch(CrossSigningError):
    """The homeserver's copy of the device's keys differs from the local crypto store: not signed."""


class StateFileError(CrossSigningError):
    """`cross_signing.json` is unreadable, inconsistent or belongs to another account."""


# --- base64, canonical JSON, Ed25519 -----------------------------------------------------------------

def encode_b64(data: bytes) -> str:
    """Unpadded standard base64, as Matrix writes keys and signatures."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def decode_b64(text: str) -> bytes:
    """Standard base64, padded or not; raises ValueError on anything else."""
    if not isinstance(text, str):
        raise ValueError("not a base64 string")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not valid base64") from exc


def signable_json(obj: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: canonical JSON of the object without `signatures` and `unsigned`."""
    return encode_canonical_json({k: v for k, v in obj.items() if k not in ("signatures", "unsigned")})


def key_id_for(public_key: str) -> str:
    return f"ed25519:{public_key}"


class Ed25519Key:
    """An Ed25519 signing key made from a 32-byte seed. Its repr shows the public key only."""

    __slots__ = ("_signing", "public_key")

    def __init__(self, seed: bytes):
        if not isinstance(seed, (bytes, bytearray)) or len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._signing = SigningKey(bytes(seed))
        self.public_key = encode_b64(bytes(self._signing.verify_key))

    @classmethod
    def generate(cls) -> "Ed25519Key":
        return cls(os.urandom(32))

    @property
    def seed(self) -> bytes:
        return bytes(self._signing)

    @property
    def key_id(self) -> str:
        return key_id_for(self.public_key)

    def sign(self, obj: Mapping[str, Any]) -> str:
        """The unpadded base64 signature of the object's signable JSON."""
        return encode_b64(self._signing.sign(signable_json(obj)).signature)

    def sign_json(self, obj: Mapping[str, Any], user_id: str) -> dict:
        """A copy of the object with this key's signature added under `signatures[user_id]` (other
        signatures are kept)."""
        signed = json.loads(json.dumps(obj))
        signature = self.sign(signed)
        signed.setdefault("signatures", {}).setdefault(user_id, {})[self.key_id] = signature
        return signed

    def __repr__(self) -> str:
        return f"Ed25519Key({self.public_key})"


def verify_signature(obj: Mapping[str, Any], user_id: str, key_id: str, public_key: str) -> bool:
    """True if `obj.signatures[user_id][key_id]` is a valid Ed25519 signature of the object's signable
    JSON by `public_key` (unpadded base64). Any malformation is simply False."""
    try:
        signature = obj["signatures"][user_id][key_id]
        verify_key = VerifyKey(decode_b64(public_key))
        verify_key.verify(signable_json(obj), decode_b64(signature))
        return True
    except (KeyError, TypeError, ValueError, BadSignatureError, AttributeError):
        return False
    except Exception:  # nacl raises its own types for bad key lengths
        return False


def format_fingerprint(public_key: str | None, group: int = 4) -> str:
    """A key for humans: the base64 text in groups of four, e.g. `Ab3d eF9h ...`."""
    if not public_key:
        return "(none)"
    return " ".join(public_key[i:i + group] for i in range(0, len(public_key), group))


def cross_signing_key_json(user_id: str, usage: str, key: Ed25519Key,
                           signed_by: Ed25519Key | None = None) -> dict:
    """The public JSON of a cross-signing key, signed by `signed_by` (the master key) if given."""
    body = {"user_id": user_id, "usage": [usage], "keys": {key.key_id: key.public_key}}
    return signed_by.sign_json(body, user_id) if signed_by is not None else body


def _single_key(key_json: Any, user_id: str, usage: str) -> str | None:
    """The public key of a well-formed cross-signing key JSON of this user and usage, or None."""
    if not isinstance(key_json, dict) or key_json.get("user_id") != user_id:
        return None
    if usage not in (key_json.get("usage") or []):
        return None
    keys = key_json.get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        return None
    (key_id, public), = keys.items()
    if key_id != key_id_for(public):
        return None
    try:
        if len(decode_b64(public)) != 32:
            return None
    except ValueError:
        return None
    return public


# --- other users' identities -------------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceTrust:
    """One device as published by the homeserver, with what its signatures prove."""
    device_id: str
    ed25519: str | None
    curve25519: str | None
    display_name: str | None
    self_signed: bool      # the device JSON carries a valid signature by the device's own ed25519 key
    cross_signed: bool     # ... and a valid one by the owner's (master-signed) self-signing key


@dataclass(frozen=True)
class UserIdentity:
    """A user's cross-signing identity as checked here. `self_signing_key` is set only if it is validly
    signed by `master_key`; `cross_signed` of a device is only ever True through that chain."""
    user_id: str
    master_key: str | None
    self_signing_key: str | None
    user_signing_key: str | None = None    # published only for one's own account
    devices: Mapping[str, DeviceTrust] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def has_identity(self) -> bool:
        return self.master_key is not None

    @property
    def fingerprint(self) -> str:
        return format_fingerprint(self.master_key)

    def device(self, device_id: str) -> DeviceTrust | None:
        return self.devices.get(device_id)

    def device_with_key(self, curve25519: str | None) -> DeviceTrust | None:
        """The device whose published (and self-signed) Curve25519 key this is, if any."""
        if not curve25519:
            return None
        return next((d for d in self.devices.values() if d.curve25519 == curve25519 and d.self_signed),
                    None)

    @property
    def cross_signed_devices(self) -> list[str]:
        return sorted(d for d, t in self.devices.items() if t.cross_signed)

    @property
    def unsigned_devices(self) -> list[str]:
        return sorted(d for d, t in self.devices.items() if not t.cross_signed)


def _check_device(user_id: str, device_id: str, device: Any, self_signing_key: str | None
                  ) -> tuple[DeviceTrust, list[str]]:
    problems: list[str] = []
    if not isinstance(device, dict):
        return DeviceTrust(device_id, None, None, None, False, False), [f"device {device_id}: malformed"]
    keys = device.get("keys") if isinstance(device.get("keys"), dict) else {}
    ed = keys.get(f"ed25519:{device_id}")
    curve = keys.get(f"curve25519:{device_id}")
    unsigned = device.get("unsigned") if isinstance(device.get("unsigned"), dict) else {}
    name = unsigned.get("device_display_name")
    consistent = device.get("user_id") == user_id and device.get("device_id") == device_id
    if not consistent:
        problems.append(f"device {device_id}: its JSON names another user or device")
    self_signed = bool(consistent and isinstance(ed, str)
                       and verify_signature(device, user_id, f"ed25519:{device_id}", ed))
    if consistent and not self_signed:
        problems.append(f"device {device_id}: no valid signature by its own key")
    cross_signed = bool(self_signed and self_signing_key
                        and verify_signature(device, user_id, key_id_for(self_signing_key),
                                             self_signing_key))
    return DeviceTrust(device_id, ed if isinstance(ed, str) else None,
                       curve if isinstance(curve, str) else None,
                       name if isinstance(name, str) else None, self_signed, cross_signed), problems


def identity_from_query(user_id: str, answer: Mapping[str, Any]) -> UserIdentity:
    """A `UserIdentity` from a `/keys/query` answer, verifying every signature in the chain
    master → self-signing → device."""
    problems: list[str] = []
    master_json = (answer.get("master_keys") or {}).get(user_id)
    master = _single_key(master_json, user_id, "master")
    if master_json is not None and master is None:
        problems.append("malformed master key")
    ssk_json = (answer.get("self_signing_keys") or {}).get(user_id)
    ssk = _single_key(ssk_json, user_id, "self_signing")
    if ssk_json is not None and ssk is None:
        problems.append("malformed self-signing key")
    if ssk is not None and (master is None
                            or not verify_signature(ssk_json, user_id, key_id_for(master), master)):
        problems.append("self-signing key is not signed by the master key")
        ssk = None
    usk_json = (answer.get("user_signing_keys") or {}).get(user_id)
    usk = _single_key(usk_json, user_id, "user_signing")
    if usk is not None and (master is None
                            or not verify_signature(usk_json, user_id, key_id_for(master), master)):
        problems.append("user-signing key is not signed by the master key")
        usk = None
    devices: dict[str, DeviceTrust] = {}
    for device_id, device in sorted(((answer.get("device_keys") or {}).get(user_id) or {}).items()):
        trust, device_problems = _check_device(user_id, device_id, device, ssk)
        devices[device_id] = trust
        problems += device_problems
    return UserIdentity(user_id, master, ssk, usk, devices, tuple(problems))


def matrix_http(homeserver: str, access_token: str, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT
                ) -> httpx.AsyncClient:
    """An httpx client for the client-server API with the account's token (the caller closes it)."""
    register_secret(access_token)
    return httpx.AsyncClient(base_url=homeserver.rstrip("/"), timeout=timeout,
                             headers={"Authorization": f"Bearer {access_token}"})


async def _request(http: httpx.AsyncClient, method: str, path: str, body: Any = None) -> httpx.Response:
    try:
        return await http.request(method, path, json=body)
    except httpx.HTTPError as exc:
        raise HomeserverError(f"the homeserver did not answer {method} {path.split('?')[0]} "
                              f"({exc.__class__.__name__}); check that it runs and is reachable") from None


def _error(response: httpx.Response, what: str) -> HomeserverError:
    try:
        data = response.json()
    except ValueError:
        data = {}
    errcode = data.get("errcode") if isinstance(data, dict) else None
    message = str(data.get("error", "")) if isinstance(data, dict) else ""
    return HomeserverError(f"{what} failed: HTTP {response.status_code} {errcode or ''} {message}".rstrip(),
                           response.status_code, errcode)


def _json(response: httpx.Response, what: str) -> dict:
    if response.status_code != 200:
        raise _error(response, what)
    try:
        data = response.json()
    except ValueError:
        raise HomeserverError(f"{what}: the homeserver answered something that is not JSON") from None
    if not isinstance(data, dict):
        raise HomeserverError(f"{what}: unexpected answer from the homeserver")
    return data


async def query_keys(http: httpx.AsyncClient, user_ids: Iterable[str]) -> dict:
    """The raw `/keys/query` answer for all devices of these users."""
    users = list(dict.fromkeys(user_ids))
    response = await _request(http, "POST", KEYS_QUERY, {"device_keys": {u: [] for u in users},
                                                         "timeout": 10_000})
    return _json(response, "querying keys")


async def query_identities(http: httpx.AsyncClient, user_ids: Iterable[str]) -> dict[str, UserIdentity]:
    """Identities of several users in one `/keys/query` (e.g. every admin for `!trust`)."""
    users = list(dict.fromkeys(user_ids))
    answer = await query_keys(http, users)
    return {u: identity_from_query(u, answer) for u in users}


async def query_identity(http: httpx.AsyncClient, user_id: str) -> UserIdentity:
    """One user's master key, self-signing key (verified against the master) and devices, each with
    `cross_signed` True only if its JSON carries a valid signature by that self-signing key."""
    return (await query_identities(http, [user_id]))[user_id]


async def own_device_replaced(homeserver: str, access_token: str, user_id: str, device_id: str,
                              own_identity_keys: Mapping[str, str]) -> bool:
    """True if the homeserver holds other identity keys for this device than the local crypto store
    (a store restored from an old backup, or wiped: nio then made a new Olm account for the old device
    id, and the homeserver refuses all its uploads). False if they match or the server has none yet."""
    async with matrix_http(homeserver, access_token) as http:
        answer = await query_keys(http, [user_id])
    device = ((answer.get("device_keys") or {}).get(user_id) or {}).get(device_id)
    if not isinstance(device, dict):
        return False
    keys = device.get("keys") or {}
    return (keys.get(f"curve25519:{device_id}") != own_identity_keys.get("curve25519")
            or keys.get(f"ed25519:{device_id}") != own_identity_keys.get("ed25519"))


# --- the bot's own identity --------------------------------------------------------------------------

State = Literal["created", "ok", "signed_new_device", "mismatch", "reset",
                "not_set_up", "device_unsigned"]


@dataclass(frozen=True)
class CrossSigningStatus:
    """What `ensure`/`reset`/`inspect` found or did.

    ensure: created | ok | signed_new_device (this device was not signed by the identity yet: a new
    device after a lost crypto store, or the first start after a reset) | mismatch;  reset: reset;
    inspect (read-only): ok | mismatch | not_set_up | device_unsigned.
    `master_key` is the stored (own) master key; `server_master_key` what the homeserver publishes
    (they differ only on mismatch). `device_signed`: the device is cross-signed by the identity the
    homeserver publishes. `detail` is one sentence for humans."""
    state: State
    user_id: str
    device_id: str
    master_key: str | None
    server_master_key: str | None
    device_signed: bool
    detail: str

    @property
    def fingerprint(self) -> str:
        return format_fingerprint(self.master_key)

    @property
    def server_fingerprint(self) -> str:
        return format_fingerprint(self.server_master_key)

    @property
    def healthy(self) -> bool:
        return self.state in ("created", "ok", "signed_new_device", "reset") and self.device_signed


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


def _write_private_json(path: Path, data: dict) -> None:
    """Atomically write a 0600 file (temp file, fsync, rename, fsync of the directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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
    _write_private_json(Path(path), keys.to_json())


class CrossSigning:
    """Cross-signing of one account's identity and its own device. The password is needed only for
    operations the homeserver guards with user-interactive auth (replacing keys, deleting devices)."""

    def __init__(self, homeserver: str, user_id: str, access_token: str, device_id: str, *,
                 password: str | None = None, http: httpx.AsyncClient | None = None,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT):
        self.homeserver, self.user_id, self.device_id = homeserver, user_id, device_id
        register_secret(access_token)
        register_secret(password)
        self._password = password
        self._own_http = http is None
        self.http = http if http is not None else matrix_http(homeserver, access_token, timeout)

    @classmethod
    def from_nio(cls, client: Any, password: str | None = None, **kwargs: Any) -> "CrossSigning":
        """For a logged-in nio AsyncClient (its homeserver, user, token and device)."""
        return cls(client.homeserver, client.user_id, client.access_token, client.device_id,
                   password=password, **kwargs)

    def __repr__(self) -> str:
        return f"CrossSigning({self.user_id}, device={self.device_id})"

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> "CrossSigning":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # --- reading ---------------------------------------------------------------------------------

    async def own_identity(self) -> UserIdentity:
        """The account's identity and devices as the homeserver publishes them, checked here."""
        return await query_identity(self.http, self.user_id)

    async def list_devices(self) -> list[dict]:
        """`GET /devices`: device_id, display_name, last_seen_ts (and last_seen_ip) of each device."""
        data = _json(await _request(self.http, "GET", DEVICES), "listing devices")
        return list(data.get("devices") or [])

    async def inspect(self, state_dir: Path, own_identity_keys: Mapping[str, str] | None = None
                      ) -> CrossSigningStatus:
        """Read-only check for `spbot doctor`: changes nothing, neither on disk nor on the homeserver.
        States: ok | mismatch | not_set_up | device_unsigned."""
        stored = load_keys(Path(state_dir) / STATE_FILE, self.user_id)
        answer = await query_keys(self.http, [self.user_id])
        identity = identity_from_query(self.user_id, answer)
        stored_master = stored.master.public_key if stored else None
        signed = self._device_signed(identity)
        if own_identity_keys is not None and identity.device(self.device_id) is not None:
            self._own_device_json(answer, own_identity_keys)   # raises DeviceKeysMismatch
        if identity.master_key is None:
            return self._status("not_set_up", stored_master, None, False,
                                "no cross-signing identity on the homeserver yet; the bot creates it "
                                "when it starts")
        if stored is None or not self._matches(stored, identity):
            return self._mismatch(stored, identity, signed)
        if not signed:
            return self._status("device_unsigned", stored_master, identity.master_key, False,
                                f"device {self.device_id} is not signed by the bot's identity; the bot "
                                "signs it when it starts")
        return self._status("ok", stored_master, identity.master_key, True,
                            f"identity {format_fingerprint(stored_master)} and device {self.device_id} "
                            "are cross-signed")

    # --- ensure ----------------------------------------------------------------------------------

    async def ensure(self, state_dir: Path, own_identity_keys: Mapping[str, str]) -> CrossSigningStatus:
        """Make sure the account has the bot's cross-signing identity and this device is signed by it.

        First start: new keys, stored 0600 before the upload, uploaded, device signed → "created".
        Later starts: "ok", or "signed_new_device" if this device was not yet signed (new device after
        a lost crypto store). If the homeserver holds another master key than the stored one (or one
        while nothing is stored) → "mismatch", and nothing is uploaded or written.

        Call it after nio has uploaded the device keys (after the first sync's `keys_upload`).
        `own_identity_keys` is `client.olm.account.identity_keys`: the device JSON on the homeserver
        is signed only if its keys equal these."""
        state_dir = Path(state_dir)
        path = state_dir / STATE_FILE
        stored = load_keys(path, self.user_id)
        answer = await query_keys(self.http, [self.user_id])
        identity = identity_from_query(self.user_id, answer)
        stored = self._settle_pending(state_dir, stored, identity)

        created = False
        if identity.master_key is None:
            if stored is None:
                stored = OwnKeys.generate(self.user_id)
                save_keys(path, stored)
                log.info("cross_signing_keys_generated", user_id=self.user_id,
                         master=format_fingerprint(stored.master.public_key))
            await self._upload_keys(stored, self._password)
            created = True
            answer = await query_keys(self.http, [self.user_id])
            identity = identity_from_query(self.user_id, answer)
            if not self._matches(stored, identity):
                raise CrossSigningError("the homeserver accepted the cross-signing keys but does not "
                                        "publish them; check the homeserver's logs")
        elif stored is None or not self._matches(stored, identity):
            status = self._mismatch(stored, identity, self._device_signed(identity))
            log.warning("cross_signing_mismatch", user_id=self.user_id,
                        stored=format_fingerprint(status.master_key),
                        server=format_fingerprint(status.server_master_key))
            return status

        device = self._own_device_json(answer, own_identity_keys)
        signed_now = False
        if not self._device_signed(identity):
            await self._sign_device(stored, device)
            signed_now = True
            identity = identity_from_query(self.user_id, await query_keys(self.http, [self.user_id]))
            if not self._device_signed(identity):
                raise CrossSigningError(f"the homeserver accepted the signature of device "
                                        f"{self.device_id} but does not publish it")
        master = stored.master.public_key
        fp = format_fingerprint(master)
        if created:
            state, detail = "created", f"created identity {fp} and signed device {self.device_id}"
        elif signed_now:
            state, detail = "signed_new_device", f"signed device {self.device_id} with identity {fp}"
        else:
            state, detail = "ok", f"identity {fp} and device {self.device_id} are cross-signed"
        log.info("cross_signing_" + state, user_id=self.user_id, device_id=self.device_id, master=fp)
        return self._status(state, master, identity.master_key, True, detail)

    # --- reset -----------------------------------------------------------------------------------

    async def reset(self, password: str, state_dir: Path,
                    own_identity_keys: Mapping[str, str] | None = None) -> CrossSigningStatus:
        """Replace the account's identity with new keys (user-interactive auth with the password).
        Clients will warn that the bot's identity changed. The new seeds go to a pending file (0600)
        before the upload and replace `cross_signing.json` once the homeserver has them. The device
        is signed now if `own_identity_keys` is given, else by the next `ensure`."""
        register_secret(password)
        state_dir = Path(state_dir)
        new = OwnKeys.generate(self.user_id)
        pending = state_dir / PENDING_FILE
        save_keys(pending, new)
        try:
            await self._upload_keys(new, password)
        except BaseException:
            pending.unlink(missing_ok=True)
            raise
        os.replace(pending, state_dir / STATE_FILE)
        answer = await query_keys(self.http, [self.user_id])
        identity = identity_from_query(self.user_id, answer)
        if not self._matches(new, identity):
            raise CrossSigningError("the homeserver accepted the new cross-signing keys but does not "
                                    "publish them; check the homeserver's logs")
        fp = format_fingerprint(new.master.public_key)
        log.warning("cross_signing_reset", user_id=self.user_id, master=fp)
        signed = False
        if own_identity_keys is not None:
            await self._sign_device(new, self._own_device_json(answer, own_identity_keys))
            identity = identity_from_query(self.user_id, await query_keys(self.http, [self.user_id]))
            signed = self._device_signed(identity)
        detail = f"new identity {fp}" + (f"; device {self.device_id} signed" if signed
                                         else "; the device is signed when the bot next starts")
        return self._status("reset", new.master.public_key, identity.master_key, signed, detail)

    # --- devices ---------------------------------------------------------------------------------

    async def delete_device(self, device_id: str, password: str | None = None) -> bool:
        """Delete one of the account's devices (so clients stop encrypting to it), with password
        user-interactive auth. False if the device did not exist. Refuses the current device."""
        if device_id == self.device_id:
            raise CrossSigningError(f"refusing to delete {device_id}: it is this client's own device")
        register_secret(password)
        path = f"{DEVICES}/{quote(device_id, safe='')}"
        exists = await _request(self.http, "GET", path)
        if exists.status_code == 404:
            return False    # Synapse answers 200 to deleting an unknown device: ask first
        _json(exists, f"looking up device {device_id}")
        response = await self._with_uia("DELETE", path, {}, password if password is not None
                                        else self._password, f"deleting device {device_id}")
        if response.status_code == 404:
            return False
        _json(response, f"deleting device {device_id}")
        log.info("device_deleted", user_id=self.user_id, device_id=device_id)
        return True

    # --- internals -------------------------------------------------------------------------------

    def _status(self, state: State, master: str | None, server_master: str | None, signed: bool,
                detail: str) -> CrossSigningStatus:
        return CrossSigningStatus(state, self.user_id, self.device_id, master, server_master, signed,
                                  detail)

    def _mismatch(self, stored: OwnKeys | None, identity: UserIdentity, signed: bool
                  ) -> CrossSigningStatus:
        stored_master = stored.master.public_key if stored else None
        if stored is None:
            detail = ("the homeserver has a cross-signing identity for this account "
                      f"({identity.fingerprint}) but the state directory holds no keys: it was created "
                      "elsewhere or the keys were lost; `spbot trust reset` replaces it")
        elif identity.master_key != stored_master:
            detail = (f"the homeserver publishes master key {identity.fingerprint}, not the bot's "
                      f"{format_fingerprint(stored_master)}: someone replaced the bot's identity; "
                      "check the account, then `spbot trust reset`")
        else:
            detail = ("the homeserver's self-signing key for this account is not the bot's: "
                      "check the account, then `spbot trust reset`")
        return self._status("mismatch", stored_master, identity.master_key, signed, detail)

    @staticmethod
    def _matches(stored: OwnKeys, identity: UserIdentity) -> bool:
        return (identity.master_key == stored.master.public_key
                and identity.self_signing_key == stored.self_signing.public_key)

    def _device_signed(self, identity: UserIdentity) -> bool:
        device = identity.device(self.device_id)
        return bool(device and device.cross_signed)

    def _settle_pending(self, state_dir: Path, stored: OwnKeys | None, identity: UserIdentity
                        ) -> OwnKeys | None:
        """A reset that stopped between upload and rename: keep its keys if the homeserver has them."""
        pending_path = state_dir / PENDING_FILE
        try:
            pending = load_keys(pending_path, self.user_id)
        except StateFileError:
            pending = None
        if pending is None:
            pending_path.unlink(missing_ok=True)
            return stored
        if self._matches(pending, identity):
            os.replace(pending_path, state_dir / STATE_FILE)
            log.info("cross_signing_pending_reset_completed", user_id=self.user_id)
            return pending
        pending_path.unlink(missing_ok=True)
        return stored

    def _own_device_json(self, answer: Mapping[str, Any], own_identity_keys: Mapping[str, str]) -> dict:
        device = ((answer.get("device_keys") or {}).get(self.user_id) or {}).get(self.device_id)
        if not isinstance(device, dict):
            raise DeviceKeysUnavailable(f"the homeserver has no keys for device {self.device_id} yet; "
                                        "sign it after the client's first keys upload")
        keys = device.get("keys") or {}
        expected = {f"ed25519:{self.device_id}": own_identity_keys.get("ed25519"),
                    f"curve25519:{self.device_id}": own_identity_keys.get("curve25519")}
        if (device.get("user_id") != self.user_id or device.get("device_id") != self.device_id
                or any(keys.get(k) != v or not v for k, v in expected.items())
                or not verify_signature(device, self.user_id, f"ed25519:{self.device_id}",
                                        own_identity_keys.get("ed25519") or "")):
            raise DeviceKeysMismatch(f"the homeserver's keys for device {self.device_id} differ from the "
                                     "local crypto store; the device was not signed. Was the crypto "
                                     "store replaced, or is another client using this device id?")
        return device

    async def _sign_device(self, keys: OwnKeys, device: dict) -> None:
        signed = keys.self_signing.sign_json(device, self.user_id)
        signed.pop("unsigned", None)
        body = {self.user_id: {self.device_id: signed}}
        data = _json(await _request(self.http, "POST", SIGNATURES_UPLOAD, body),
                     f"uploading the signature of device {self.device_id}")
        failures = data.get("failures") or {}
        if failures:
            reasons = "; ".join(f"{dev}: {(f or {}).get('errcode', '')} {(f or {}).get('message', '')}"
                                .strip() for user in failures.values() for dev, f in user.items())
            raise CrossSigningError(f"the homeserver rejected the signature of device "
                                    f"{self.device_id}: {reasons}")

    async def _upload_keys(self, keys: OwnKeys, password: str | None) -> None:
        response = await self._with_uia("POST", SIGNING_UPLOAD, keys.upload_body(), password,
                                        "uploading cross-signing keys")
        _json(response, "uploading cross-signing keys")

    async def _with_uia(self, method: str, path: str, body: dict, password: str | None,
                        what: str) -> httpx.Response:
        """Send; on a 401 that starts user-interactive auth, answer with m.login.password."""
        response = await _request(self.http, method, path, body)
        if response.status_code != 401:
            return response
        try:
            flows_info = response.json()
        except ValueError:
            flows_info = {}
        if not isinstance(flows_info, dict) or "flows" not in flows_info:
            raise _error(response, what)
        stages = [tuple(f.get("stages") or ()) for f in flows_info.get("flows") or []
                  if isinstance(f, dict)]
        if ("m.login.password",) not in stages:
            url = next((p.get("url") for p in (flows_info.get("params") or {}).values()
                        if isinstance(p, dict) and p.get("url")), None)
            offered = ", ".join("+".join(s) for s in stages) or "none"
            raise AuthRequired(f"{what} needs user-interactive auth the bot cannot do "
                               f"(offered: {offered})" + (f"; approve it at {url}" if url else ""), url)
        if not password:
            raise AuthRequired(f"{what} needs the account's password (user-interactive auth)")
        auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": self.user_id},
                "password": password}
        if flows_info.get("session"):
            auth["session"] = flows_info["session"]
        response = await _request(self.http, method, path, {**body, "auth": auth})
        if response.status_code == 401:
            if _errcode(response) == "M_UNKNOWN_TOKEN":
                raise _error(response, what)
            raise AuthFailed(f"{what}: the homeserver refused the password")
        return response


def _errcode(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data.get("errcode") if isinstance(data, dict) else None


async def cross_sign_nio_device(client: Any, state_dir: Path, password: str | None = None,
                                **kwargs: Any) -> CrossSigningStatus:
    """Cross-sign a logged-in nio client's own device (creating the account's identity on first use,
    keys kept in `state_dir`): the same path as the bot's `ensure`."""
    async with CrossSigning.from_nio(client, password=password, **kwargs) as xs:
        return await xs.ensure(state_dir, client.olm.account.identity_keys)
