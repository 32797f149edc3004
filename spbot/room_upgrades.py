"""Following an admin room's upgrade.

Element offers to upgrade a room to a newer room version: a new room is made and the old one gets an
`m.room.tombstone` pointing to it; clients then show only the new one. A bot that kept to the room ids in
its config would be gone from the family's view: their commands in the new room ignored, its alerts
posted where nobody looks (and refused: the upgrade leaves the old room read-only). So when an admin
upgrades an admin room, the bot joins the replacement (or, in an invite-only room, asks that admin in a
direct message to invite it, and joins on the invitation), listens there,
and sends its notices there from then on. The replacement is remembered in the store; the config need not
change (the bot says so in the new room, once)."""
from __future__ import annotations

from typing import Any, Callable

from nio import JoinResponse

from .config import ROOM_ID
from .logs import get_logger
from .render import Reply

log = get_logger(__name__)
KEY = "room_replacements"          # old room id → the room that replaced it


class RoomUpgrades:
    def __init__(self, store: Any):
        self.store = store
        self.replaced: dict[str, str] = {}

    async def start(self) -> None:
        self.replaced = dict(await self.store.get(KEY) or {})

    def current(self, room_id: str) -> str:
        """The room that replaced `room_id` in the end (itself if it was never upgraded)."""
        seen = {room_id}
        while room_id in self.replaced and self.replaced[room_id] not in seen:
            room_id = self.replaced[room_id]
            seen.add(room_id)
        return room_id

    def is_replacement(self, room_id: str) -> bool:
        """Whether an admin room was upgraded to this one (only those are recorded)."""
        return room_id in self.replaced.values()

    async def follow(self, old: str, new: str) -> bool:
        """Record the upgrade; False if it was known already (the tombstone seen again)."""
        if self.replaced.get(old) == new:
            return False
        self.replaced[old] = new
        await self.store.put(KEY, self.replaced)
        return True


class RoomFollower:
    """Acts on tombstones and on the invitation to a replacement (the bot's runtime hands them over)."""

    def __init__(self, upgrades: RoomUpgrades, connection: Any, messenger: Any, outbox: Any,
                 admins: list[str], spawn: Callable):
        self.upgrades = upgrades
        self.connection = connection
        self.messenger = messenger
        self.outbox = outbox
        self.admins = admins
        self.spawn = spawn

    async def on_tombstone(self, room_id: str, event: Any, room_allowed: bool) -> None:
        new = replacement_of(event)
        if new is None or new == room_id or not room_allowed or event.sender not in self.admins:
            log.warning("room_upgrade_ignored", room=room_id, sender=event.sender, new=new)
            return
        if not await self.upgrades.follow(room_id, new):
            return
        result = await self.connection.client.join(new)
        log.info("room_upgraded", old=room_id, new=new, by=event.sender, joined=type(result).__name__)
        if isinstance(result, JoinResponse):
            await self._tell_followed(room_id, new)
        else:     # invite-only: joined on the admins' invitation (joined()); the old room is read-only now
            self.spawn(self._ask_for_invite(event.sender, room_id, new), name="room upgrade")

    async def joined(self, room_id: str) -> None:
        """The bot joined a room on an invitation: if it replaced an admin room, say so there."""
        old = next((o for o, n in self.upgrades.replaced.items() if n == room_id), None)
        if old is not None:
            await self._tell_followed(old, room_id)

    async def _ask_for_invite(self, admin: str, old: str, new: str) -> None:
        """Beside the sync loop: a direct room waits for its invitation to sync."""
        try:
            await self.messenger.direct_message(admin, invite_me_notice(old, new))
        except Exception:
            log.exception("room_upgrade_invite_request_failed", room=new)

    async def _tell_followed(self, old: str, new: str) -> None:
        await self.outbox.send(new, self.messenger.labelled(followed_notice(old, new)).content(),
                               once=f"room-upgrade|{new}")


def replacement_of(event: Any) -> str | None:
    """The new room a tombstone names, if it is a room id."""
    new = getattr(event, "replacement_room", None)
    return new if isinstance(new, str) and ROOM_ID.match(new) else None


def followed_notice(old: str, new: str) -> Reply:
    return Reply.text(f"➡️ I followed this room's upgrade: I now listen here and send my notices here, not in "
                      f"{old}. Replace {old} with {new} in `rooms` in my config when you next edit it (until "
                      "then I remember it).")


def invite_me_notice(old: str, new: str) -> Reply:
    """To the admin who upgraded the room, directly: the old room no longer lets the bot post."""
    return Reply.error(f"You upgraded the admin room {old} to {new}, and I cannot join the new room by myself.",
                       "Invite me to it (in Element: the new room's settings → People → Invite); I will join "
                       "it and listen there.")
