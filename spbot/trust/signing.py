"""Signing primitives of Matrix cross-signing: unpadded base64, the canonical JSON that is signed, Ed25519
keys made from seeds (their repr shows the public key only), signature checks and fingerprints for
humans. Pure functions over PyNaCl; no network, no files."""
from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any, Mapping

from canonicaljson import encode_canonical_json
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey


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
