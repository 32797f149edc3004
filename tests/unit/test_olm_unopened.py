"""An Olm pre-key message for a one-time key the bot no longer holds (a homeserver put back in time hands
out such keys again, and delivers old messages again): nio's own decrypt, with real vodozemac keys,
answers it as it answers other messages it cannot open (None, and a new session with the sender's
device) instead of raising out of the sync (spbot/nio_fixes.py)."""
from __future__ import annotations

import json

import vodozemac
from nio.crypto import Olm
from nio.store import SqliteMemoryStore

import spbot.matrix  # noqa: F401  (applies spbot/nio_fixes.py, as the bot does)

BOT, ALICE = "@bot:localhost", "@alice:localhost"


def bot_machine() -> Olm:
    return Olm(BOT, "BOTDEVICE", SqliteMemoryStore(BOT, "BOTDEVICE"))


def prekey_message(to: Olm, one_time_key: vodozemac.Curve25519PublicKey) -> tuple[vodozemac.Account, object]:
    alice = vodozemac.Account()
    bot_identity = vodozemac.Curve25519PublicKey.from_base64(to.account.identity_keys["curve25519"])
    session = alice.create_outbound_session(bot_identity, one_time_key)
    payload = json.dumps({"type": "m.dummy", "content": {}, "sender": ALICE, "recipient": BOT,
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
