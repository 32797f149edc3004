"""To-device messages the bot cannot read never raise out of nio's handling of them (spbot/nio_fixes.py):
an Olm pre-key message for a one-time key the bot no longer holds (a homeserver put back in time hands
out such keys again, and delivers old messages again) is answered as nio answers other messages it
cannot open (None, and a new session with the sender's device); whatever else a stranger puts in an
encrypted to-device message is dropped. With real vodozemac keys."""
from __future__ import annotations

import base64
import json

import vodozemac
from hypothesis import given, settings
from hypothesis import strategies as st
from nio.crypto import Olm
from nio.events import ToDeviceEvent
from nio.store import SqliteMemoryStore

import spbot.matrix  # noqa: F401  (applies spbot/nio_fixes.py, as the bot does)

BOT, ALICE = "@bot:localhost", "@alice:localhost"


def bot_machine() -> Olm:
    return Olm(BOT, "BOTDEVICE", SqliteMemoryStore(BOT, "BOTDEVICE"))


def prekey_message(to: Olm, one_time_key: vodozemac.Curve25519PublicKey, kind: str = "m.dummy",
                   content: dict | None = None) -> tuple[vodozemac.Account, object]:
    alice = vodozemac.Account()
    bot_identity = vodozemac.Curve25519PublicKey.from_base64(to.account.identity_keys["curve25519"])
    session = alice.create_outbound_session(bot_identity, one_time_key)
    payload = json.dumps({"type": kind, "content": content or {}, "sender": ALICE, "recipient": BOT,
                          "recipient_keys": {"ed25519": to.account.identity_keys["ed25519"]},
                          "keys": {"ed25519": alice.ed25519_key.to_base64()}, "sender_device": "ALICEDEV"})
    message = session.encrypt(payload.encode()).to_pre_key()    # as nio reads a type 0 ciphertext
    return alice, message


def test_a_prekey_message_for_a_one_time_key_no_longer_held_is_not_raised_out_of_the_sync():
    machine = bot_machine()
    gone = vodozemac.Curve25519SecretKey().public_key()        # a one-time key this account never had
    alice, message = prekey_message(machine, gone)
    unwedging = []
    machine._mark_device_for_unwedging = lambda sender, key: unwedging.append((sender, key))

    assert machine.decrypt(ALICE, alice.curve25519_key.to_base64(), message) is None
    assert unwedging == [(ALICE, alice.curve25519_key.to_base64())]


def test_a_prekey_message_for_a_held_one_time_key_still_opens():
    machine = bot_machine()
    machine.account.generate_one_time_keys(1)
    key_b64 = next(iter(machine.account.one_time_keys["curve25519"].values()))
    alice, message = prekey_message(machine, vodozemac.Curve25519PublicKey.from_base64(key_b64))

    opened = machine.decrypt(ALICE, alice.curve25519_key.to_base64(), message)
    assert type(opened).__name__ == "DummyEvent" and opened.sender == ALICE


MACHINE = bot_machine()
OWN_KEY = MACHINE.account.identity_keys["curve25519"]


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from([0, 1, 2, -1]), body=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(
    lambda raw: base64.b64encode(raw).decode())),
    sender_key=st.one_of(st.just(OWN_KEY), st.text(max_size=60)))
def test_no_encrypted_to_device_message_raises_out_of_the_sync(kind, body, sender_key):
    event = ToDeviceEvent.parse_event({"type": "m.room.encrypted", "sender": ALICE, "content": {
        "algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": sender_key,
        "ciphertext": {OWN_KEY: {"type": kind, "body": body}}}})
    MACHINE.handle_to_device_event(event)


TEXT = st.one_of(st.text(max_size=80), st.binary(max_size=120).map(lambda raw: base64.b64encode(raw).decode()))
ROOM_KEY = st.fixed_dictionaries(
    {"algorithm": st.just("m.megolm.v1.aes-sha2"), "room_id": TEXT, "session_id": TEXT, "session_key": TEXT},
    optional={"sender_key": TEXT, "sender_claimed_ed25519_key": TEXT,
              "forwarding_curve25519_key_chain": st.lists(TEXT, max_size=2), "extra": st.integers()})


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(["m.room_key", "m.forwarded_room_key", "m.room_key_request", "m.dummy"]),
       content=ROOM_KEY)
def test_no_content_in_a_real_olm_message_raises_out_of_the_sync(kind, content):
    machine = bot_machine()
    machine.account.generate_one_time_keys(1)
    key_b64 = next(iter(machine.account.one_time_keys["curve25519"].values()))
    alice, message = prekey_message(machine, vodozemac.Curve25519PublicKey.from_base64(key_b64), kind, content)
    body = base64.b64encode(message.to_any().to_parts()[1]).decode().rstrip("=")
    event = ToDeviceEvent.parse_event({"type": "m.room.encrypted", "sender": ALICE, "content": {
        "algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": alice.curve25519_key.to_base64(),
        "ciphertext": {machine.account.identity_keys["curve25519"]: {"type": 0, "body": body}}}})
    machine.handle_to_device_event(event)
