"""An admin's side of the conversation: a persistent E2EE nio device that sends commands and collects
what the bot answers. Used by `spbot console`, the dev stack's readiness check, benchmarks and tests.

It records every event of its rooms once, in order, even when it falls behind: a limited sync timeline
is filled from `/messages` back to the previous position (spbot/timeline.py)."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from nio import (Api, AsyncClient, AsyncClientConfig, LoginResponse, MegolmEvent, RedactionEvent,
                 RoomSendResponse, SyncResponse)
from nio.events.room_events import Event

from .key_resend import KeyResend
from .matrix import key_upkeep
from .room_keys import KeyNotDelivered, share_room_key
from .system.private_files import write_private_json
from .timeline import SYNC_FILTER, read_batch

POSITION_EVERY = 5.0         # seconds between two saves of the sync position


@dataclass
class Seen:
    """One event as this client saw it (decrypted where it could)."""
    event_id: str
    sender: str
    type: str
    content: dict
    decrypted: bool
    received: float = field(default_factory=time.monotonic)
    room_id: str = ""

    @property
    def relates(self) -> dict:
        return self.content.get("m.relates_to") or {}

    @property
    def reply_to(self) -> str | None:
        return (self.relates.get("m.in_reply_to") or {}).get("event_id")

    @property
    def body(self) -> str:
        return self.content.get("body", "")


def quiet_nio() -> None:
    """A new device cannot read what was said before it existed; nio warns about each such message
    ("Error decrypting megolm event…"), which on a terminal looks like something broke."""
    logging.getLogger("nio").setLevel(logging.ERROR)


class ChatClient:
    def __init__(self, homeserver: str, user_id: str, password: str, store_dir: Path,
                 device_name: str = "spbot-console"):
        self.homeserver, self.user_id, self.password = homeserver, user_id, password
        self.store_dir = Path(store_dir)
        self.device_name = device_name
        self.client: AsyncClient | None = None
        self.events: list[Seen] = []
        self._changed = asyncio.Condition()
        # Undecryptable events, tried again after each sync: a room key can arrive after its message
        # (a client such as Element does the same).
        self._undecrypted: dict[str, tuple] = {}
        self._sync_task: asyncio.Task | None = None
        self._since: str | None = None
        self._saved: str | None = None
        self._saved_at = 0.0
        self.on_event: Callable[[Seen], None] | None = None

    async def start(self, wait_rooms: bool = True) -> "ChatClient":
        self.store_dir.mkdir(parents=True, exist_ok=True)
        creds_path = self.store_dir / "credentials.json"
        config = AsyncClientConfig(store_sync_tokens=False, encryption_enabled=True)
        saved = json.loads(creds_path.read_text()) if creds_path.exists() else None
        self.client = AsyncClient(self.homeserver, self.user_id, store_path=str(self.store_dir),
                                  config=config, device_id=saved["device_id"] if saved else None)
        if saved:
            self.client.restore_login(self.user_id, saved["device_id"], saved["access_token"])
        else:
            response = await self.client.login(self.password, device_name=self.device_name)
            if not isinstance(response, LoginResponse):
                raise RuntimeError(f"login as {self.user_id} failed: {response}")
            write_private_json(creds_path, {"device_id": response.device_id,
                                            "access_token": response.access_token})
        self.key_resend = KeyResend(self.client)     # the bot gets a room key of ours again if it lost it
        position = self.store_dir / "sync_position"
        self._since = self._saved = position.read_text().strip() or None if position.exists() else None
        await self._sync_once(timeout=0, full_state=True)
        self._sync_task = asyncio.create_task(self._sync_loop())
        return self

    @property
    def device_id(self) -> str:
        return self.client.device_id

    async def stop(self) -> None:
        if self._sync_task:
            self._sync_task.cancel()
            await asyncio.gather(self._sync_task, return_exceptions=True)
        if self.client:
            await self.client.close()
        self._save_position(now=True)

    async def _sync_loop(self) -> None:
        while True:
            try:
                await self._sync_once(timeout=10_000)
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(0.5)

    async def _sync_once(self, timeout: int, full_state: bool = False) -> None:
        """One sync, read in full (gaps filled); the position moves on only once all is recorded."""
        self.client.next_batch = ""       # see Connection._sync: never let nio skip a response
        response = await self.client.sync(timeout=timeout, full_state=full_state, since=self._since,
                                          sync_filter=SYNC_FILTER)
        if not isinstance(response, SyncResponse):
            raise RuntimeError(f"sync as {self.user_id} failed: {response}")
        self.key_resend.read_key_requests(response)
        await self._upkeep()
        batch = await read_batch(self.client, response, self._since)
        for room, event in batch.invites + batch.events:
            if isinstance(event, Event):
                await self._record(room, event)
        for room, event in batch.gap:            # nio ran its callbacks for the timeline only
            await self.client._on_event(event, room)
        await self._decrypt_late()
        self._since = response.next_batch
        self._save_position()

    def _save_position(self, now: bool = False) -> None:
        """The position to start from next time, at most every few seconds and at stop: a file rewritten at
        every sync held up the event loop of every client in the process (truncating it makes ext4 write
        out its last contents first, and under load that open() waited). After a kill, the client sees
        those few seconds again."""
        if self._since == self._saved or (not now and time.monotonic() - self._saved_at < POSITION_EVERY):
            return
        (self.store_dir / "sync_position").write_text(self._since)
        self._saved, self._saved_at = self._since, time.monotonic()

    async def _decrypt_late(self) -> None:
        """Record, as decrypted now, the events whose room key has arrived since."""
        for event_id, (room, event) in list(self._undecrypted.items()):
            try:
                decrypted = self.client.decrypt_event(event)
            except Exception:
                continue
            del self._undecrypted[event_id]
            if isinstance(decrypted, Event):
                decrypted.event_id = event_id
                await self._record(room, decrypted)

    async def _upkeep(self) -> None:
        await key_upkeep(self.client)

    async def _record(self, room, event: Event) -> None:
        source = event.source or {}
        content = source.get("content") or {}
        if isinstance(event, MegolmEvent):
            kind, decrypted = "m.room.encrypted", False
            # nio decrypts only an event that names its room, and one can come without it (seen: the
            # bot's message in a private room this client had just joined, never decrypted with its key
            # at hand)
            event.room_id = event.room_id or room.room_id
            if len(self._undecrypted) < 1000:
                self._undecrypted[event.event_id] = (room, event)
        else:
            kind = source.get("type") or getattr(event, "type", "")
            decrypted = bool(getattr(event, "decrypted", False))
        if isinstance(event, RedactionEvent):
            content = {**content, "redacts": event.redacts}
        seen = Seen(event.event_id, event.sender, kind, content, decrypted, room_id=room.room_id)
        async with self._changed:
            self.events.append(seen)
            self._changed.notify_all()
        if self.on_event:
            self.on_event(seen)

    # --- sending -------------------------------------------------------------------------------

    async def send(self, room_id: str, text: str, content: dict | None = None) -> str:
        """An encrypted m.text message (or the given content); returns its event id."""
        content = content or {"msgtype": "m.text", "body": text}
        for attempt in range(3):
            await self._share_key(room_id)
            try:
                response = await self.client.room_send(room_id, "m.room.message", content,
                                                       ignore_unverified_devices=True)
                break
            except KeyError:      # nio shared a key that a device-list change (our sync) replaced meanwhile
                if attempt == 2:
                    raise
        if not isinstance(response, RoomSendResponse):
            raise RuntimeError(f"send failed: {response}")
        return response.event_id

    async def _share_key(self, room_id: str) -> None:
        """The room key, shared before the message and checked to have reached the bot (a refused share
        is tried again; spbot/room_keys.py), twice more after a pause if the homeserver keeps refusing."""
        for attempt in range(3):
            try:
                return await share_room_key(self.client, room_id)
            except KeyNotDelivered:
                if attempt == 2:
                    raise
                await asyncio.sleep(1 + attempt)

    async def send_unencrypted(self, room_id: str, event_type: str, content: dict) -> str:
        """Bypasses encryption on purpose (tests of what the bot must refuse)."""
        method, path, data = Api.room_send(self.client.access_token, room_id, event_type, content,
                                           f"plain{time.monotonic_ns()}")
        response = await self.client._send(RoomSendResponse, method, path, data, (room_id,))
        return response.event_id

    async def send_encrypted(self, room_id: str, event_type: str, content: dict) -> str:
        """Any event type encrypted (nio leaves reactions in the clear; Element encrypts them)."""
        room = self.client.rooms[room_id]
        if not room.members_synced:
            await self.client.joined_members(room_id)
        if self.client.should_query_keys:
            await self.client.keys_query()
        await self._share_key(room_id)
        kind, encrypted = self.client.encrypt(room_id, event_type, content)
        return await self.send_unencrypted(room_id, kind, encrypted)

    async def react(self, room_id: str, event_id: str, key: str, encrypted: bool = True) -> str:
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        if encrypted:
            return await self.send_encrypted(room_id, "m.reaction", content)
        return await self.send_unencrypted(room_id, "m.reaction", content)

    async def redact(self, room_id: str, event_id: str) -> None:
        await self.client.room_redact(room_id, event_id, reason="withdrawn")

    # --- reading -------------------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[Seen], bool], timeout: float = 15.0) -> Seen:
        async def find() -> Seen:
            async with self._changed:
                while True:
                    for seen in self.events:
                        if predicate(seen):
                            return seen
                    await self._changed.wait()
        return await asyncio.wait_for(find(), timeout)

    def replies_to(self, event_id: str, sender: str | None = None) -> list[Seen]:
        return [e for e in self.events if e.reply_to == event_id
                and (sender is None or e.sender == sender)]

    def edits_of(self, event_id: str) -> list[Seen]:
        return [e for e in self.events if e.relates.get("rel_type") == "m.replace"
                and e.relates.get("event_id") == event_id]

    async def command(self, room_id: str, text: str, bot: str, timeout: float = 15.0) -> Seen:
        """Send a command and wait for the bot's first reply to it."""
        event_id = await self.send(room_id, text)
        return await self.wait_for(lambda e: e.sender == bot and e.reply_to == event_id, timeout)

    async def wait_joined(self, room_id: str, user_id: str, timeout: float = 30.0) -> None:
        """Until `user_id` is a joined member of the room, as this client sees it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            room = self.client.rooms.get(room_id)
            if room is not None and user_id in room.users and user_id not in room.invited_users:
                return
            await asyncio.sleep(0.1)
        raise asyncio.TimeoutError(f"{user_id} did not join {room_id}")

    async def join(self, room_id: str) -> None:
        await self.client.join(room_id)
        await self.client.sync(timeout=0)
