"""The room key reaches every device before the message it opens.

nio shares a room's megolm key with the members' devices in parallel to-device requests, drops a request
the homeserver refused (a 5xx, a 429 after its retries, a lost connection) without a word, and marks
the key shared anyway; the message sent next could then never be read on those devices (nio shares a
key once, and a new one only when the session rotates, after 100 messages or a week). Seen under load
in CI: a password sent in a private room that the admin's only device could not open.

So after nio has shared a key, the devices that should hold it and do not are counted. Those the
homeserver refused get the same key again (nio skips the devices that have it), a few times; if it is
still refused, the message waits like any message the homeserver refuses (KeyNotDelivered: the outbox
retries it later with a fresh key). A device the bot has no encrypted channel to (it offers no one-time
key: long unused) cannot be helped; that is logged and the message goes out to the others.

nio also drops the key it is sharing when, during the share, a member's device list changes (a keys query
answers while the to-device requests are under way), and then fails on the key it dropped (KeyError;
seen in CI as a test client that could not send). The key was not used yet: a fresh one is shared."""
from __future__ import annotations

from nio import AsyncClient, EncryptionError

from .logs import get_logger

log = get_logger(__name__)

SHARE_ATTEMPTS = 3


class KeyNotDelivered(EncryptionError):
    """The homeserver refused the room key for some devices SHARE_ATTEMPTS times in a row."""


def devices_without_key(client: AsyncClient, room_id: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(user, device) of the room's members that the current room key was meant for and did not reach:
    (refused: sent and not taken by the homeserver, unreachable: no encrypted channel to the device).
    Meant for: every active device except the bot's own and the blacklisted ones (nio's ignored set)."""
    olm, room = client.olm, client.rooms.get(room_id)
    session = olm.outbound_group_sessions.get(room_id) if olm is not None else None
    if session is None or room is None:
        return set(), set()
    refused, unreachable = set(), set()
    for user_id in room.users:
        for device in olm.device_store.active_user_devices(user_id):
            key = (user_id, device.id)
            if key in session.users_shared_with or key in session.users_ignored:
                continue
            (refused if olm.session_store.get(device.curve25519) else unreachable).add(key)
    return refused, unreachable


def _names(devices: set[tuple[str, str]]) -> list[str]:
    return sorted(f"{user} {device}" for user, device in devices)


async def _share(client: AsyncClient, room_id: str) -> None:
    """nio's share, once more with a fresh key when nio dropped the one it was sharing."""
    for attempt in range(1, SHARE_ATTEMPTS + 1):
        try:
            await client.share_group_session(room_id, ignore_unverified_devices=True)
            return
        except KeyError:            # nio: outbound_group_sessions[room_id], invalidated meanwhile
            log.info("room_key_replaced_while_sharing", room=room_id, attempt=attempt)
    raise KeyNotDelivered(f"the room key changed under each of {SHARE_ATTEMPTS} shares")


async def share_room_key(client: AsyncClient, room_id: str) -> None:
    """Before sending to an encrypted room: when its key is to be shared, share it and make sure it
    reached every device it can reach. Network errors are the caller's, as KeyNotDelivered is (the
    message waits, and the key is shared anew)."""
    olm, room = getattr(client, "olm", None), client.rooms.get(room_id)
    if olm is None or not getattr(room, "encrypted", False) or not olm.should_share_group_session(room_id):
        return
    if room_id in client.sharing_session:        # another send is sharing it right now: that one checks
        await client.sharing_session[room_id].wait()
        return
    for attempt in range(1, SHARE_ATTEMPTS + 1):
        await _share(client, room_id)
        refused, unreachable = devices_without_key(client, room_id)
        if not refused and not unreachable:
            return
        log.warning("room_key_not_delivered", room=room_id, refused=_names(refused),
                    unreachable=_names(unreachable), attempt=attempt)
        if attempt < SHARE_ATTEMPTS:
            olm.outbound_group_sessions[room_id].shared = False    # the same key again, to those only
    if refused:
        olm.outbound_group_sessions.pop(room_id, None)
        raise KeyNotDelivered(f"the homeserver refused the room key for {len(refused)} device(s) "
                              f"{SHARE_ATTEMPTS} times")
    log.error("room_key_unreachable_devices", room=room_id, devices=_names(unreachable),
              hint="these devices offer no one-time key (long unused): they cannot read the bot's messages "
                   "until they come online again")
