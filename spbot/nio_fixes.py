"""Fixes for matrix-nio bugs that hurt the bot in the field, applied once when spbot.matrix is imported.

nio 0.26 builds a ShareGroupSessionError (the homeserver refused a to-device request carrying a room key:
a 5xx, or a 429 after nio's retries) with the room id and the set of devices as its third and fourth
positional fields, which are `retry_after_ms` and `soft_logout`. A non-empty set is true, so nio takes
the error for a soft logout and forgets its access token: from then on every request of the bot fails
with "Not logged in" until it is restarted (found with tests/fault_proxy.py; test_room_keys.py).
ToDeviceError has the same slip one field earlier: the message it failed to send becomes its
`retry_after_ms`, which nio divides by 1000 when the refusal was a 429 (a TypeError in the sync loop).

nio takes a forwarded room key only from the bot's own verified devices. The bot asks an admin's device
for the key of a command it could not decrypt, and Element answers with a forwarded key: from the very
device that made the key (its Olm key is the key's sender key, its signing key the one the key claims,
no forwarding chain), which is as good as the first m.room_key. That one is taken too, when asked for.

nio turns an Olm pre-key message it cannot open into a logged error and a new session with the sender
("unwedging"), but not when vodozemac refuses it for a one-time key the bot no longer holds: that
SessionCreationException ends the whole sync, which then fails again on the same message for ever (a deaf
bot). A homeserver put back in time delivers such messages again (test_homeserver_restore.py). They are
handled as nio handles the others.

Worse, any other vodozemac refusal of a to-device message's own content ends the sync the same way: a
ciphertext that is not an Olm message, a room key that is not a Megolm session key. Anyone can send the
bot's device such a message, and the homeserver gives it again at every try: one request from a stranger
made the bot deaf for good (test_hostile_to_device.py). Such a message is dropped and logged (twenty a
minute at most, the rest counted); a failure of the bot's own state (its store) still ends the sync as
before, to be noticed there.

nio reads the count of one-time keys the homeserver holds for the bot from each sync, but skips a count
of 0 (`if count:`), keeping the last one it saw: a homeserver emptied between two syncs (anyone can claim
them all in a burst) was never refilled, and no device new to the bot could open a channel to it again."""
from __future__ import annotations

import vodozemac
from jsonschema.exceptions import SchemaError, ValidationError
from nio import responses
from nio.client.base_client import Client
from nio.crypto.olm_machine import Olm
from nio.schemas import Schemas, validate_json

from .logs import Budget, get_logger


def _error(cls, parsed_dict, **fields):
    """The error response nio meant to build: its own fields by name, after the common ones."""
    try:
        validate_json(parsed_dict, Schemas.error)
    except (SchemaError, ValidationError):
        return cls("unknown error", **fields)
    return cls(parsed_dict["error"], parsed_dict["errcode"], parsed_dict.get("retry_after_ms"),
               bool(parsed_dict.get("soft_logout", False)), **fields)


def _share_group_session_error(cls, parsed_dict, room_id, users_shared_with):
    return _error(cls, parsed_dict, room_id=room_id, users_shared_with=users_shared_with)


def _to_device_error(cls, parsed_dict, message):
    return _error(cls, parsed_dict, to_device_message=message)


_should_accept_forward = Olm._should_accept_forward
_decrypt = Olm.decrypt
_handle_olm_events = Client._handle_olm_events
_handle_to_device_event = Olm.handle_to_device_event
# refusals of what a message holds: vodozemac's (its state errors, PickleException, are not among them) and
# a body that is not base64 at all (binascii.Error, UnicodeEncodeError)
UNREADABLE = (ValueError, vodozemac.DecodeException, vodozemac.KeyException, vodozemac.SignatureException,
              vodozemac.SessionCreationException, vodozemac.OlmDecryptionException,
              vodozemac.MegolmDecryptionException, vodozemac.SessionKeyDecodeException,
              vodozemac.PkDecodeException)
log = get_logger(__name__)
_unreadable_lines = Budget()      # anyone can send them, as many as they like


def _accept_forward_from_the_key_maker(machine, sender, sender_key, event) -> bool:
    if _should_accept_forward(machine, sender, sender_key, event):
        return True
    request = machine.outgoing_key_requests.get(event.session_id)
    content = event.source.get("content", {})
    device = machine.device_store.device_from_sender_key(sender, sender_key)
    return (request is not None and device is not None and not machine.is_device_blacklisted(device)
            and event.algorithm == request.algorithm == "m.megolm.v1.aes-sha2"
            and (event.room_id, event.session_id) == (request.room_id, request.session_id)
            and content.get("sender_key") == sender_key
            and content.get("sender_claimed_ed25519_key") == device.ed25519
            and not content.get("forwarding_curve25519_key_chain"))


def _decrypt_or_unwedge(machine, sender, sender_key, message):
    try:
        return _decrypt(machine, sender, sender_key, message)
    except vodozemac.SessionCreationException as exc:
        log.warning("olm_message_unopened", sender=sender, error=str(exc),
                    why="its one-time key is not the bot's now (used already, or never): a new session is made "
                        "with its device")
        machine._mark_device_for_unwedging(sender, sender_key)
        return None


def _handle_to_device_or_drop(machine, event):
    try:
        return _handle_to_device_event(machine, event)
    except UNREADABLE as exc:
        left_out = _unreadable_lines.take()
        if left_out is not None:
            log.warning("to_device_unreadable", sender=getattr(event, "sender", "?"), kind=type(event).__name__,
                        error=f"{exc.__class__.__name__}: {str(exc)[:200]}", todo="nothing: it was dropped",
                        **({"more_left_unlogged": left_out} if left_out else {}))
        return None


def _handle_olm_events_counting_none_left(client, response):
    _handle_olm_events(client, response)
    if response.device_key_count.signed_curve25519 == 0:
        client.olm.uploaded_key_count = 0


def apply() -> None:
    responses.ShareGroupSessionError.from_dict = classmethod(_share_group_session_error)
    responses.ToDeviceError.from_dict = classmethod(_to_device_error)
    Olm._should_accept_forward = _accept_forward_from_the_key_maker
    Olm.decrypt = _decrypt_or_unwedge
    Olm.handle_to_device_event = _handle_to_device_or_drop
    Client._handle_olm_events = _handle_olm_events_counting_none_left
