"""Other users' identities (the admins'), read with `query_identity`: the master key, the self-signing key
and every device, each signature in the chain master → self-signing → device checked here with PyNaCl.
Nothing the homeserver says about trust is taken on faith."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping


from .homeserver import query_keys
from .signing import decode_b64, format_fingerprint, key_id_for, verify_signature


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


async def query_identities(http: Any, user_ids: Iterable[str]) -> dict[str, UserIdentity]:
    """Identities of several users in one `/keys/query` (e.g. every admin for `!trust`)."""
    users = list(dict.fromkeys(user_ids))
    answer = await query_keys(http, users)
    return {u: identity_from_query(u, answer) for u in users}


async def query_identity(http: Any, user_id: str) -> UserIdentity:
    """One user's master key, self-signing key (verified against the master) and devices, each with
    `cross_signed` True only if its JSON carries a valid signature by that self-signing key."""
    return (await query_identities(http, [user_id]))[user_id]
