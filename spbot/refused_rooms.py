"""When an admin room refuses the bot's messages.

An admin may take the bot's right to post in the admin room (room settings → Roles & Permissions: "Send
messages" for moderators only), or remove it from the room; the homeserver then refuses every message
for good (M_FORBIDDEN, or not in the room) and the outbox drops it. An alert dropped there rings nobody.
So each new message an admin room refused is sent to every admin directly instead (a direct room rings
by default), with what went wrong and how to fix it."""
from __future__ import annotations

import json
from typing import Any, Callable

from .logs import get_logger
from .render import Reply

log = get_logger(__name__)
FORWARDED = ("M_FORBIDDEN", "not in room")      # refusals another room would not share


class RefusedRooms:
    """Watches the outbox's failures (spbot/outbox.py `on_failed`)."""

    def __init__(self, messenger: Any, admins: list[str], spawn: Callable):
        self.messenger = messenger
        self.admins = admins
        self.spawn = spawn

    async def failed(self, row: dict, reason: str) -> None:
        if row.get("secret") or row.get("edit_of") is not None or not any(r in reason for r in FORWARDED):
            return
        room = row["room_id"]
        if room not in self.messenger.admin_rooms() and room not in self.messenger.upgrades.replaced:
            return              # a direct room: what failed there is not sent anywhere else (no loops)
        body = (json.loads(row["content"]) or {}).get("body")
        if not isinstance(body, str) or not body:
            return
        log.warning("admin_room_refused", room=room, message=row["id"], forwarded_to=len(self.admins))
        for admin in self.admins:
            self.spawn(self._send(admin, forwarded(room, reason, body)), name="refused room")

    async def _send(self, admin: str, reply: Reply) -> None:
        try:
            await self.messenger.direct_message(admin, reply)
        except Exception:        # the direct room could not be made now; the log says why
            log.exception("refused_room_forward_failed", admin=admin)


def forwarded(room: str, reason: str, body: str) -> Reply:
    return Reply.error(
        f"I could not post this in the admin room {room}: the homeserver refused it ({reason}).",
        "Give me the right to send messages there again (the room's settings → Roles & Permissions), or "
        "invite me back if I was removed. What I could not post:") + Reply.text(body)
