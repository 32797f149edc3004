"""The event filter: which room messages are commands the bot will act on, in the order the checks run.

room allowed → looks like a command → addressed to this bot (`!on nas …`, `!all …`, or unaddressed and
this bot is the fleet room's default) → not an edit (in the decrypted payload or its cleartext wrapper) →
not seen before (claimed in SQLite, so a command is acted on at most once across restarts) → not a
replayed ciphertext (its Megolm session and index first used by another event, see replay_guard) → not
older than max_command_age → from an admin → encrypted.
Anything else is dropped, with at most one short reply saying why where the sender deserves one."""
from __future__ import annotations

import time
from dataclasses import dataclass

from nio import MatrixRoom, RoomMessageText

from .config import Config
from .event_age import sent_at_or_stamp
from .logs import get_logger
from .parsing import ALL, Addressing
from .render import Reply
from .replay_guard import MegolmOrigin, ReplayGuard
from .request import Request
from .room_upgrades import RoomUpgrades
from .store import Store

log = get_logger(__name__)


@dataclass
class Verdict:
    request: Request | None = None
    reply: Reply | None = None
    reason: str = ""


class Screen:
    def __init__(self, config: Config, store: Store, bot_user_id: str, first_start: float,
                 upgrades: RoomUpgrades, addressing: Addressing | None = None,
                 state_lost_at: float | None = None):
        self.config = config
        # when a damaged or missing state database was replaced (spbot/state_loss.py): the record of which
        # commands had run went with it, so none sent before then runs
        self.state_lost_at = state_lost_at
        self.upgrades = upgrades
        self.addressing = addressing or Addressing.from_config(config)
        self.store = store
        self.bot_user_id = bot_user_id
        self.first_start = first_start
        self.replay_guard = ReplayGuard(store, bot_user_id)

    def sent_at(self, event) -> float:
        """When any room event was sent, on this machine's clock (spbot/event_age.py)."""
        origin = self.replay_guard.origin(event.event_id) if getattr(event, "decrypted", False) else None
        return _sent(event, origin)

    def room_allowed(self, room_id: str) -> bool:
        return (room_id in self.config.rooms or self.upgrades.is_replacement(room_id)
                or self.config.allow_any_admin_room)

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
        if not self.addressing.for_me(self.addressing.split(event.body)):
            return Verdict(reason="addressed to another bot")
        decrypted = getattr(event, "decrypted", False)
        origin = self.replay_guard.origin(event.event_id) if decrypted else None
        if is_edit(event, origin):
            return Verdict(reason="edit of an earlier message")
        if not await self.store.claim_event(event.event_id, room.room_id, time.time()):
            return Verdict(reason="already handled")
        sent = _sent(event, origin)
        if self.state_lost_at is not None and sent < self.state_lost_at:
            # not answered one by one (copies included): those already run were answered then, and the
            # notice of the loss asks the admins to send again what is still wanted
            return Verdict(reason="sent before the state database was replaced")
        if decrypted:
            refused = await self._replay_check(room, event, origin)
            if refused is not None:
                return refused
        if time.time() - sent > self.config.max_command_age:
            return self._too_old(event, sent)
        if event.sender not in self.config.admins:
            if self.addressing.fleet and self.addressing.split(event.body).target == ALL:
                # A command for every bot from an admin of some of them: those answer; a refusal from
                # each of the others would be noise (the gathered reply lists who did not answer).
                return Verdict(reason="non-admin, addressed to every bot")
            return await self._stranger(event)
        if not decrypted:
            log.warning("unencrypted_command", sender=event.sender, event_id=event.event_id)
            return Verdict(reply=Reply.error(
                "I did not run this: it was sent unencrypted.",
                "Commands are only taken from end-to-end encrypted messages; check that encryption "
                "is on in this room and in your client, then send it again."),
                reason="unencrypted")
        return Verdict(request=Request(event.sender, "", room.room_id, event.event_id,
                                       event.body, int(sent * 1000)))

    async def _replay_check(self, room: MatrixRoom, event: RoomMessageText,
                            origin: MegolmOrigin | None) -> Verdict | None:
        if origin is None:                  # decrypted outside the guard: it cannot vouch for it
            log.error("replay_check_unavailable", sender=event.sender, event_id=event.event_id)
            return Verdict(reply=Reply.error(
                "I did not run this: I could not check that it is not a replayed message.",
                "This is a fault in the bot; tell the other admins and check its log."),
                reason="no replay check")
        first = await self.replay_guard.claim(origin, event.event_id, room.room_id, event.sender)
        if first == event.event_id:
            return None
        log.warning("replayed_message_refused", sender=event.sender, event_id=event.event_id,
                    first_event_id=first, session_id=origin.session_id, index=origin.message_index)
        if not await self._may_tell(f"replay-told:{event.sender}"):
            return Verdict(reason="replayed ciphertext, already told")
        return Verdict(reply=Reply.error(
            "I did not run this: it is a copy of an earlier encrypted message (a replay), "
            "not a new command.", "To run a command again, type it again."),
            reason="replayed ciphertext")

    async def _may_tell(self, key: str) -> bool:
        """At most one such reply per sender per stranger_reply_interval (no reply storms)."""
        last = await self.store.get(key, 0)
        if time.time() - last < self.config.stranger_reply_interval:
            return False
        await self.store.put(key, time.time())
        return True

    def _too_old(self, event: RoomMessageText, sent: float) -> Verdict:
        """`sent` on this machine's clock (spbot/event_age.py), like first_start."""
        if sent < self.first_start or event.sender not in self.config.admins:
            return Verdict(reason="history from before the bot's first start")
        return Verdict(reply=Reply.text("ignored: sent while I was offline, send it again "
                                        "if it is still wanted."), reason="too old")

    async def _stranger(self, event: RoomMessageText) -> Verdict:
        log.warning("command_from_non_admin", sender=event.sender, event_id=event.event_id)
        if not await self._may_tell(f"refused:{event.sender}"):
            return Verdict(reason="non-admin, already told")
        return Verdict(reply=Reply.text(
            f"Sorry {event.sender}, I only take commands from this server's admins. "
            "Ask one of them if you need something done."), reason="non-admin")


def is_edit(event: RoomMessageText, origin: MegolmOrigin | None) -> bool:
    """An edit if either layer says so: the decrypted payload, or the cleartext wrapper that Synapse
    and Element read (nio keeps the wrapper's relation only when the payload has none)."""
    layers = [(event.source.get("content") or {}).get("m.relates_to")]
    if origin is not None:
        layers.append(origin.outer_content.get("m.relates_to"))
    return any(isinstance(r, dict) and r.get("rel_type") == "m.replace" for r in layers)


def _sent(event, origin: MegolmOrigin | None) -> float:
    """When the event was sent, on this machine's clock: the encrypted wrapper's age when first seen,
    else the event's own age, else its homeserver's timestamp."""
    if origin is not None and origin.sent_at is not None:
        return origin.sent_at
    return sent_at_or_stamp(getattr(event, "source", None) or {}, event.server_timestamp, time.time())
