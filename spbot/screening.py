"""The event filter: which room messages are commands the bot will act on, in the order the checks run.

room allowed → looks like a command → not an edit → not seen before (claimed in SQLite, so a command is
acted on at most once across restarts) → not older than max_command_age → from an admin → encrypted.
Anything else is dropped, with at most one short reply saying why where the sender deserves one."""
from __future__ import annotations

import time
from dataclasses import dataclass

from nio import MatrixRoom, RoomMessageText

from .config import Config
from .context import Request
from .logs import get_logger
from .render import Reply
from .store import Store

log = get_logger(__name__)


@dataclass
class Verdict:
    request: Request | None = None
    reply: Reply | None = None
    reason: str = ""


class Screen:
    def __init__(self, config: Config, store: Store, bot_user_id: str, first_start: float):
        self.config = config
        self.store = store
        self.bot_user_id = bot_user_id
        self.first_start = first_start

    def room_allowed(self, room_id: str) -> bool:
        return room_id in self.config.rooms or self.config.allow_any_admin_room

    def is_command(self, body: str) -> bool:
        prefix = self.config.command_prefix
        return body.startswith(prefix) and len(body) > len(prefix) and not body[len(prefix)].isspace()

    async def message(self, room: MatrixRoom, event: RoomMessageText) -> Verdict:
        if event.sender == self.bot_user_id:
            return Verdict(reason="own message")
        if not self.room_allowed(room.room_id):
            return Verdict(reason="room not configured")
        if not self.is_command(event.body or ""):
            return Verdict(reason="not a command")
        relates = (event.source.get("content") or {}).get("m.relates_to") or {}
        if relates.get("rel_type") == "m.replace":
            return Verdict(reason="edit of an earlier message")
        if not await self.store.claim_event(event.event_id, room.room_id, time.time()):
            return Verdict(reason="already handled")
        age = time.time() - event.server_timestamp / 1000
        if age > self.config.max_command_age:
            return self._too_old(event)
        if event.sender not in self.config.admins:
            return await self._stranger(event)
        if not getattr(event, "decrypted", False):
            log.warning("unencrypted_command", sender=event.sender, event_id=event.event_id)
            return Verdict(reply=Reply.error(
                "I did not run this: it was sent unencrypted.",
                "Commands are only taken from end-to-end encrypted messages; check that encryption "
                "is on in this room and in your client, then send it again."),
                reason="unencrypted")
        return Verdict(request=Request(event.sender, "", room.room_id, event.event_id,
                                       event.body, event.server_timestamp))

    def _too_old(self, event: RoomMessageText) -> Verdict:
        if event.server_timestamp / 1000 < self.first_start or event.sender not in self.config.admins:
            return Verdict(reason="history from before the bot's first start")
        return Verdict(reply=Reply.text("ignored: sent while I was offline, send it again "
                                        "if it is still wanted."), reason="too old")

    async def _stranger(self, event: RoomMessageText) -> Verdict:
        log.warning("command_from_non_admin", sender=event.sender, event_id=event.event_id)
        key = f"refused:{event.sender}"
        last = await self.store.get(key, 0)
        if time.time() - last < self.config.stranger_reply_interval:
            return Verdict(reason="non-admin, already told")
        await self.store.put(key, time.time())
        return Verdict(reply=Reply.text(
            f"Sorry {event.sender}, I only take commands from this server's admins. "
            "Ask one of them if you need something done."), reason="non-admin")
