"""Commands and votes that arrived before their room key: asked for again, retried after each sync, and
answered with what to do if the key has not come within `undecryptable_wait` (nothing ran or counted).
A re-posted ciphertext is a replay (spbot/replay_guard.py), not a key problem: it is refused, not
retried. Between syncs nothing ticks: `until_due` sleeps until the first waiting event's time is up (or
a new one arrives)."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from nio import EncryptionError, MatrixRoom, MegolmEvent

from .config import Config
from .inbox import Inbox
from .logs import get_logger
from .matrix import Connection
from .messenger import Messenger
from .render import Reply
from .screening import Screen
from .store import Store

log = get_logger(__name__)


class LateDecryption:
    def __init__(self, screen: Screen, connection: Connection, store: Store, inbox: Inbox, messenger: Messenger,
                 config: Config, take_event: Callable[[MatrixRoom, Any], Awaitable[Any]]):
        """`take_event`: where an event goes once it could be decrypted (as if it had just arrived): a
        command, or a vote (a ✅ from a device that never wrote in the room starts a new room key)."""
        self.screen = screen
        self.connection = connection
        self.store = store
        self.inbox = inbox
        self.messenger = messenger
        self.config = config
        self.take_event = take_event
        self.undecrypted: dict[str, tuple[MatrixRoom, MegolmEvent, float]] = {}
        self._added = asyncio.Event()

    def waiting_for(self, event_id: str) -> bool:
        return event_id in self.undecrypted

    async def arrived(self, room: MatrixRoom, event: MegolmEvent) -> None:
        """An admin's event the bot could not decrypt: ask for its key and keep it for retries."""
        if not self.screen.room_allowed(room.room_id) or event.sender not in self.config.admins:
            return
        first = self.screen.replay_guard.refused_replay(event.event_id)
        if first is not None:             # a re-posted ciphertext (e.g. a ✅): not a key problem
            log.warning("replayed_event_refused", event_id=event.event_id, sender=event.sender, first=first)
            return
        log.info("undecryptable", event_id=event.event_id, sender=event.sender, device=event.device_id)
        self.undecrypted[event.event_id] = (room, event, time.monotonic())
        self._added.set()
        try:
            await self.connection.client.request_room_key(event)      # the bot's other devices
        except Exception as exc:  # already requested, or no session to ask with
            log.debug("room_key_request_skipped", reason=str(exc))
        await self._ask_sender(event)

    async def _ask_sender(self, event: MegolmEvent) -> None:
        """The sending device holds the key too and gives it to a device it shared it with (Element
        does, and spbot's console): asked as well. nio asks only the bot's own devices."""
        client = self.connection.client
        request = event.as_key_request(event.sender, client.device_id, f"{event.session_id}|sender",
                                       event.device_id)
        try:
            await client.to_device(request)
        except Exception as exc:  # the network: the command is answered with what to do in time
            log.debug("room_key_request_skipped", reason=str(exc))

    async def until_due(self) -> None:
        """Until the earliest waiting event's `undecryptable_wait` is up (a retry then answers it)."""
        while True:
            self._added.clear()
            if self.undecrypted:
                first = min(since for _, _, since in self.undecrypted.values())
                wait = first + self.config.undecryptable_wait - time.monotonic()
                if wait < 0:
                    return
            else:
                wait = None
            try:
                await asyncio.wait_for(self._added.wait(), None if wait is None else wait + 0.01)
            except asyncio.TimeoutError:
                return

    async def retry(self) -> None:
        """Retry events that could not be decrypted; give up after `undecryptable_wait` and say so."""
        client = self.connection.client
        for event_id, (room, event, since) in list(self.undecrypted.items()):
            try:
                decrypted = client.decrypt_event(event)
            except EncryptionError:
                decrypted = None              # the room key has not arrived (yet)
            if decrypted is not None and not isinstance(decrypted, MegolmEvent):
                decrypted.room_id = room.room_id
                await self.take_event(room, decrypted)
                del self.undecrypted[event_id]
                await self.inbox.finish_if_waiting(event_id)
            elif time.monotonic() - since > self.config.undecryptable_wait:
                if await self.store.claim_event(event_id, room.room_id, time.time()):
                    await self.messenger.reply_to(room.room_id, event_id, not_decrypted(event))
                del self.undecrypted[event_id]
                await self.inbox.finish_if_waiting(event_id)


def not_decrypted(event: MegolmEvent) -> Reply:
    """What the sender is told; a reaction is known by the relation its cleartext wrapper declares."""
    relates = (event.source.get("content") or {}).get("m.relates_to")
    vote = isinstance(relates, dict) and relates.get("rel_type") == "m.annotation"
    return Reply.error(
        f"I could not decrypt your {'reaction' if vote else 'message'} (from your device {event.device_id}), "
        f"so {'it did not count' if vote else 'I did not run it'}.",
        f"Your client has not shared the room key with me. {'React' if vote else 'Send the command'} again; "
        "if this keeps happening, sign out and back in on that device, or verify it.")
