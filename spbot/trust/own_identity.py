"""The bot's own identity: it owns a master key, a self-signing key and a user-signing key (see own_keys)
and signs its own device with the self-signing key, so that clients (Element) show its messages without
"not verified by its owner".

    async with CrossSigning.from_nio(client, password=password) as xs:
        status = await xs.ensure(state_dir, client.olm.account.identity_keys)
        if status.state == "mismatch": ...   # tell the admins; never reset by itself

No secret (seeds, access token, password) ever appears in a log line, an exception message or a repr.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping
from urllib.parse import quote

from ..logs import get_logger, register_secret
from .errors import CrossSigningError, DeviceKeysMismatch, DeviceKeysUnavailable, StateFileError
from .homeserver import (DEFAULT_TIMEOUT, DEVICES, SIGNATURES_UPLOAD, SIGNING_UPLOAD, answer_json, matrix_http,
                         query_keys, request, with_uia)
from .identities import UserIdentity, identity_from_query, query_identity
from .own_keys import PENDING_FILE, STATE_FILE, OwnKeys, load_keys, save_keys
from .signing import format_fingerprint, verify_signature

log = get_logger(__name__)

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


class CrossSigning:
    """Cross-signing of one account's identity and its own device. The password is needed only for
    operations the homeserver guards with user-interactive auth (replacing keys, deleting devices)."""

    def __init__(self, homeserver: str, user_id: str, access_token: str, device_id: str, *,
                 password: str | None = None, http: Any = None,
                 timeout: float = DEFAULT_TIMEOUT):
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
        data = answer_json(await request(self.http, "GET", DEVICES), "listing devices")
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
        exists = await request(self.http, "GET", path)
        if exists.status_code == 404:
            return False    # Synapse answers 200 to deleting an unknown device: ask first
        answer_json(exists, f"looking up device {device_id}")
        response = await with_uia(self.http, self.user_id, "DELETE", path, {},
                                  password if password is not None else self._password,
                                  f"deleting device {device_id}")
        if response.status_code == 404:
            return False
        answer_json(response, f"deleting device {device_id}")
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
        data = answer_json(await request(self.http, "POST", SIGNATURES_UPLOAD, body),
                     f"uploading the signature of device {self.device_id}")
        failures = data.get("failures") or {}
        if failures:
            reasons = "; ".join(f"{dev}: {(f or {}).get('errcode', '')} {(f or {}).get('message', '')}"
                                .strip() for user in failures.values() for dev, f in user.items())
            raise CrossSigningError(f"the homeserver rejected the signature of device "
                                    f"{self.device_id}: {reasons}")

    async def _upload_keys(self, keys: OwnKeys, password: str | None) -> None:
        response = await with_uia(self.http, self.user_id, "POST", SIGNING_UPLOAD, keys.upload_body(),
                                  password, "uploading cross-signing keys")
        answer_json(response, "uploading cross-signing keys")


async def cross_sign_nio_device(client: Any, state_dir: Path, password: str | None = None,
                                **kwargs: Any) -> CrossSigningStatus:
    """Cross-sign a logged-in nio client's own device (creating the account's identity on first use,
    keys kept in `state_dir`): the same path as the bot's `ensure`."""
    async with CrossSigning.from_nio(client, password=password, **kwargs) as xs:
        return await xs.ensure(state_dir, client.olm.account.identity_keys)


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
