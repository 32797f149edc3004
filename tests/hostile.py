"""What anyone on the homeserver can do to the bot's device, done as a stranger's client would do it: ask
for its keys, send it to-device messages it cannot read, claim its one-time keys. Used by
tests/test_hostile_to_device.py and bench/attack.py."""
from __future__ import annotations

import base64
import json
import uuid

import vodozemac

from spbot.devstack import PlainSession

OLM = "m.olm.v1.curve25519-aes-sha2"


def device_keys(stranger: PlainSession, user_id: str) -> tuple[str, str, str]:
    """The bot's device id and its curve25519 and ed25519 keys, as anyone may ask for them."""
    answer = stranger.http.post("/_matrix/client/v3/keys/query", json={"device_keys": {user_id: []}})
    answer.raise_for_status()
    (device_id, device), = answer.json()["device_keys"][user_id].items()
    keys = device["keys"]
    return device_id, keys[f"curve25519:{device_id}"], keys[f"ed25519:{device_id}"]


def send_to_device(stranger: PlainSession, user_id: str, device_id: str, content: dict) -> None:
    answer = stranger.http.put(f"/_matrix/client/v3/sendToDevice/m.room.encrypted/{uuid.uuid4().hex}",
                               json={"messages": {user_id: {device_id: content}}})
    answer.raise_for_status()


def olm_room_key_with_a_bad_session_key(stranger: PlainSession, user_id: str, device_id: str,
                                        curve: str, ed25519: str, stranger_id: str) -> dict:
    """A real Olm message (on a one-time key of the bot's, claimed as any client claims it) whose
    m.room_key holds a session key that is not one."""
    claim = stranger.http.post("/_matrix/client/v3/keys/claim",
                               json={"one_time_keys": {user_id: {device_id: "signed_curve25519"}}})
    claim.raise_for_status()
    (one_time_key,) = claim.json()["one_time_keys"][user_id][device_id].values()
    account = vodozemac.Account()
    session = account.create_outbound_session(vodozemac.Curve25519PublicKey.from_base64(curve),
                                              vodozemac.Curve25519PublicKey.from_base64(one_time_key["key"]))
    payload = {"type": "m.room_key", "sender": stranger_id, "recipient": user_id, "sender_device": "STRANGER",
               "recipient_keys": {"ed25519": ed25519}, "keys": {"ed25519": account.ed25519_key.to_base64()},
               "content": {"algorithm": "m.megolm.v1.aes-sha2", "room_id": "!nowhere:localhost",
                           "session_id": "nothing", "session_key": "AAAA"}}
    kind, body = session.encrypt(json.dumps(payload).encode()).to_parts()
    return {"algorithm": OLM, "sender_key": account.curve25519_key.to_base64(),
            "ciphertext": {curve: {"type": kind, "body": base64.b64encode(body).decode().rstrip("=")}}}


def claim_every_one_time_key(stranger: PlainSession, user_id: str, device_id: str) -> int:
    for claimed in range(500):
        answer = stranger.http.post("/_matrix/client/v3/keys/claim",
                                    json={"one_time_keys": {user_id: {device_id: "signed_curve25519"}}})
        answer.raise_for_status()
        if not answer.json()["one_time_keys"].get(user_id, {}).get(device_id):
            return claimed
    raise AssertionError("the homeserver never ran out of the bot's one-time keys")
