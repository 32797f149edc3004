"""A device that lost one of the bot's room keys gets it again, in the form the bot first sent it.

The room key reaches a device over its encrypted channel with the bot (an Olm session). When that channel
breaks on the device's side (a restored phone, a corrupted store), the device cannot read the key, nor any
message sent with it, and nio shares a key once per device: the bot's replies stay unreadable there
until the key rotates (100 messages or a week). The device mends the channel and says so with an m.dummy
message (Element and nio both do), and nio clients also ask the sender for the key (m.room_key_request),
which nio answers only for the bot's own devices.

So the bot keeps the first form of each room key it made in this run (the signed form a device accepts
from the key's sender; nio keeps the session, not that form), and sends it again over the mended channel.
Only to a device the key was already shared with, whose user is still in the room, and that is not
blacklisted: no device gains a key it was not meant to have. Kept in memory only, as nio keeps the
sessions it sends with."""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nio import AsyncClient, DummyEvent, RoomKeyRequest, SyncResponse, ToDeviceError
from nio.event_builders import ToDeviceMessage

from .logs import get_logger

if TYPE_CHECKING:
    from nio.crypto import OutboundGroupSession

log = get_logger(__name__)

KEPT = 500              # room keys remembered (newest), across all rooms
AGAIN_AFTER = 60.0      # seconds before the same key goes to the same device again
MEGOLM = "m.megolm.v1.aes-sha2"


@dataclass(frozen=True)
class FirstKey:
    room_id: str
    session: "OutboundGroupSession"      # nio's: which devices it was shared with
    key: str                             # its session key at message index 0


class KeyResend:
    def __init__(self, client: AsyncClient):
        self.client = client
        self.first: OrderedDict[str, FirstKey] = OrderedDict()        # session id -> its first key
        self._tasks: set[asyncio.Task] = set()
        self._sent_at: dict[tuple[str, str, str], float] = {}           # (user, device, session) -> when
        self._remember_new_keys()
        client.add_to_device_callback(self._on_mended_channel, DummyEvent)

    def _remember_new_keys(self) -> None:
        olm = self.client.olm
        create = olm.create_outbound_group_session

        def create_and_remember(room_id: str) -> None:
            create(room_id)
            session = olm.outbound_group_sessions[room_id]
            self.first[session.id] = FirstKey(room_id, session, session.session_key)
            while len(self.first) > KEPT:
                self.first.popitem(last=False)
        olm.create_outbound_group_session = create_and_remember

    async def _on_mended_channel(self, event: DummyEvent) -> None:
        """Every remembered key that was shared with the device goes to it again (the device is the one
        whose key opened the channel, not the one the message names). nio runs this inside its sync:
        an error here would fail that sync, and the same to-device event would come and fail again."""
        try:
            self._resend_all(event)
        except Exception:
            log.exception("room_key_resend_failed", user=event.sender)

    def _resend_all(self, event: DummyEvent) -> None:
        known = self.client.olm.device_store.device_from_sender_key(event.sender, event.sender_key)
        if known is None:
            return
        device = (event.sender, known.id)
        shared = [first for first in self.first.values() if device in first.session.users_shared_with]
        log.info("olm_channel_mended", user=event.sender, device=known.id, keys_again=len(shared))
        for first in shared:
            self._spawn(*device, first, "channel mended")

    def read_key_requests(self, response: SyncResponse) -> None:
        """Other users' key requests, from each sync (nio keeps them from its to-device callbacks)."""
        for event in response.to_device_events:
            if isinstance(event, RoomKeyRequest) and event.sender != self.client.user_id:
                self._on_key_request(event)

    def _on_key_request(self, event: RoomKeyRequest) -> None:
        first = self.first.get(event.session_id)
        if first is None or first.room_id != event.room_id or event.algorithm != MEGOLM:
            return
        if (event.sender, event.requesting_device_id) in first.session.users_shared_with:
            self._spawn(event.sender, event.requesting_device_id, first, "key requested")

    def _spawn(self, user_id: str, device_id: str, first: FirstKey, why: str) -> None:
        now, key = time.monotonic(), (user_id, device_id, first.session.id)
        if now - self._sent_at.get(key, -AGAIN_AFTER) < AGAIN_AFTER:     # asked again and again: once
            return
        if len(self._sent_at) > 10 * KEPT:
            self._sent_at = {k: t for k, t in self._sent_at.items() if now - t < AGAIN_AFTER}
        self._sent_at[key] = now
        task = asyncio.create_task(self._send(user_id, device_id, first, why), name="room key again")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, user_id: str, device_id: str, first: FirstKey, why: str) -> None:
        try:
            await self._send_over_channel(user_id, device_id, first, why)
        except Exception as exc:           # the network; the device asks again, or mends again
            log.warning("room_key_resend_failed", user=user_id, device=device_id, room=first.room_id,
                        error=repr(exc))

    async def _send_over_channel(self, user_id: str, device_id: str, first: FirstKey, why: str) -> None:
        olm, room = self.client.olm, self.client.rooms.get(first.room_id)
        device = next((d for d in olm.device_store.active_user_devices(user_id) if d.id == device_id), None)
        if room is None or user_id not in room.users or device is None or olm.is_device_blacklisted(device):
            return
        channel = olm.session_store.get(device.curve25519)
        if channel is None:
            return
        content = {"algorithm": MEGOLM, "room_id": first.room_id, "session_id": first.session.id,
                   "session_key": first.key}
        message = ToDeviceMessage("m.room.encrypted", user_id, device_id,
                                  olm._olm_encrypt(channel, device, "m.room_key", content))
        response = await self.client.to_device(message)
        if isinstance(response, ToDeviceError):
            log.warning("room_key_resend_failed", user=user_id, device=device_id, room=first.room_id,
                        error=response.message)
            return
        log.info("room_key_sent_again", user=user_id, device=device_id, room=first.room_id, why=why)
