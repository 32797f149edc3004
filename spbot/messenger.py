"""How the bot speaks: a reply to a command (threaded to it), a notice to the admin rooms, a message only
one user can read, and edits and reactions of its own messages. Everything leaves through the outbox
(spbot/outbox.py), so a message survives a homeserver outage or a restart."""
from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Awaitable, Callable

from nio import EnableEncryptionBuilder, RoomCreateResponse, RoomPreset, RoomSendResponse

from .config import Config
from .logs import get_logger
from .matrix import Connection, know_devices
from .outbox import Outbox
from .render import Reply, escape
from .request import Request, UserError
from .room_keys import share_room_key
from .room_upgrades import RoomUpgrades
from .store import Store

log = get_logger(__name__)
DIRECT_NAME = "spbot (private)"


class Messenger:
    def __init__(self, outbox: Outbox, store: Store, connection: Connection, config: Config,
                 upgrades: RoomUpgrades):
        self.outbox = outbox
        self.store = store
        self.connection = connection
        self.config = config
        self.upgrades = upgrades      # admin rooms upgraded since (spbot/room_upgrades.py)
        # Replies to these command events go through the function first (a fleet's gathered answers, the
        # hint of a fleet room's default bot); None from it: nothing is posted here.
        self.routes: dict[str, Callable[[Reply], Awaitable[Reply | None]]] = {}
        fleet = config.host is not None and bool(config.fleet.peers)
        self.label = f"[{config.host}] " if fleet else ""
        self._waiting: set[asyncio.Task] = set()      # notices waiting for the admin rooms to be known

    def labelled(self, reply: Reply) -> Reply:
        """In a room shared by several bots, what this one says starts with its host name."""
        if not self.label or reply.body.startswith(self.label):
            return reply
        return dataclasses.replace(reply, body=self.label + reply.body,
                                   html=f"<b>{escape(self.label.strip())}</b> {reply.html}")

    @property
    def user_id(self) -> str | None:
        """The bot's own Matrix id (None before login)."""
        client = self.connection.client
        return client.user_id if client else None

    async def reply(self, request: Request, reply: Reply) -> int:
        """Answer a command, as a Matrix reply to it; returns the message's local id."""
        return await self.reply_to(request.room_id, request.event_id, reply)

    async def reply_to(self, room_id: str, event_id: str, reply: Reply) -> int:
        route = self.routes.get(event_id)
        if route is not None:
            reply = await route(reply)
            if reply is None:
                return 0
        return await self.outbox.send(room_id, self.labelled(reply).content(in_reply_to=event_id))

    async def send(self, room_id: str, reply: Reply, in_reply_to: str | None = None) -> int:
        return await self.outbox.send(room_id, self.labelled(reply).content(in_reply_to=in_reply_to))

    async def edit(self, message_id: int, reply: Reply) -> None:
        await self.outbox.edit(message_id, self.labelled(reply).content())

    async def annotate(self, message_id: int, key: str) -> None:
        await self.outbox.annotate(message_id, key)

    async def notify(self, reply: Reply, rooms: list[str] | None = None, once: str | None = None) -> list[int]:
        """Speak first (alerts, reports): a notice to every admin room. `once`: queued at most once per room
        under this key (Outbox.send)."""
        targets = rooms or self.admin_rooms()
        if not targets and not self.connection.first_sync_done.is_set():
            # Any admin room (allow_any_admin_room): they are known after the first sync, which a notice
            # given while the bot starts (an alert, a recovery) comes before; it waits for them.
            task = asyncio.create_task(self._notify_once_rooms_known(reply, once), name="notice for later")
            self._waiting.add(task)
            task.add_done_callback(self._waiting.discard)
            return []
        return [await self.outbox.send(room, self.labelled(reply).content(),
                                       once=None if once is None else f"{once}|{room}")
                for room in targets]

    async def notify_unstored(self, reply: Reply) -> bool:
        """To every admin room, straight to the homeserver and not through the outbox: only for when the
        store cannot be written (the outbox could not queue it). Not kept across a restart, not retried
        here. True if it reached one room at least."""
        client, sent = self.connection.client, False
        for room_id in self.admin_rooms() if client is not None else ():
            try:
                await know_devices(client)
                await share_room_key(client, room_id)
                response = await client.room_send(room_id, "m.room.message", self.labelled(reply).content(),
                                                  ignore_unverified_devices=True)
            except Exception as exc:      # the crypto store may not be writable either
                log.warning("unstored_notice_failed", room=room_id, error=exc.__class__.__name__)
                continue
            sent = sent or isinstance(response, RoomSendResponse)
        return sent

    async def _notify_once_rooms_known(self, reply: Reply, once: str | None) -> None:
        await self.connection.first_sync_done.wait()
        await self.notify(reply, once=once)

    def admin_rooms(self) -> list[str]:
        """The configured rooms (the rooms that replaced them, where they were upgraded); with
        allow_any_admin_room, the bot's rooms but its private ones (an admin there would be told
        everything twice)."""
        if self.config.rooms:
            return list(dict.fromkeys(self.upgrades.current(room) for room in self.config.rooms))
        client = self.connection.client
        return sorted(r for r, room in client.rooms.items()
                      if not _private(room) and r not in self.upgrades.replaced) if client else []

    async def caught_up(self, timeout: float) -> None:
        """Wait (at most `timeout` s) until what is queued in the outbox now has been sent."""
        row = await self.store.fetchone("SELECT MAX(id) AS id FROM outbox")
        if row is not None and row["id"] is not None:
            await self.outbox.event_id(row["id"], timeout=timeout)

    # --- direct messages -----------------------------------------------------------------------

    async def direct_message(self, user_id: str, reply: Reply, secret: bool = False) -> int:
        """Send a message only `user_id` can read: an encrypted direct room with them, made once and
        reused. Messages sent before they join are readable once they accept the invitation.
        `secret`: the outbox forgets the text once it is sent (a password must not rest on disk)."""
        room_id = await self._direct_room(user_id)
        return await self.outbox.send(room_id, reply.content(), secret=secret)

    async def _direct_room(self, user_id: str) -> str:
        key = f"direct_room:{user_id}"
        recorded = await self.store.get(key)
        if recorded and await self._has_member(recorded, user_id, wait=2.0):
            return recorded
        made = self._made_before(user_id)
        if made is not None:
            await self.store.put(key, made)
            return made
        if recorded:                              # they left it: a message there would go nowhere
            log.info("direct_room_replaced", user_id=user_id, room=recorded)
            await self.connection.client.room_leave(recorded)
        return await self._create_direct_room(user_id, key)

    def _made_before(self, user_id: str) -> str | None:
        """A private room with them that was made but never recorded (a stop came in between): used
        rather than inviting them to a second one."""
        client = self.connection.client
        for room in client.rooms.values():
            if _private(room) and user_id in room.users and set(room.users) <= {client.user_id, user_id}:
                return room.room_id
        return None

    async def _create_direct_room(self, user_id: str, key: str) -> str:
        response = await self.connection.client.room_create(
            is_direct=True, invite=[user_id], preset=RoomPreset.trusted_private_chat,
            name=DIRECT_NAME, initial_state=[EnableEncryptionBuilder().as_dict()])
        if not isinstance(response, RoomCreateResponse):
            raise UserError(f"I could not open a private room with {user_id}: "
                            f"{getattr(response, 'message', response)}", "try again in a minute")
        await self.store.put(key, response.room_id)     # before waiting: a retry uses it, not a new one
        # Until the invitation has synced, a message would be encrypted for the bot alone.
        if not await self._has_member(response.room_id, user_id, wait=15.0):
            raise UserError(f"I opened a private room with {user_id}, but the invitation did not show "
                            "up in time.", "try again in a minute")
        log.info("direct_room_created", user_id=user_id, room=response.room_id)
        return response.room_id

    async def _has_member(self, room_id: str, user_id: str, wait: float) -> bool:
        """Whether the room is encrypted with `user_id` in it (joined or invited), within `wait` s."""
        deadline = time.monotonic() + wait
        while True:
            room = self.connection.client.rooms.get(room_id)
            if room is not None and room.encrypted and user_id in room.users:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.1)


def _private(room) -> bool:
    """One of the bot's private rooms with one person (as _create_direct_room makes them)."""
    return (getattr(room, "name", None) == DIRECT_NAME and getattr(room, "encrypted", False)
            and getattr(room, "join_rule", "") == "invite" and len(getattr(room, "users", {})) <= 2)
