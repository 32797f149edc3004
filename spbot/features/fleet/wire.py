"""The bots' own channel: encrypted events of type EVENT_TYPE in the shared room, one `kind` each
(answer, heartbeat, claim). Only what comes from a device that the peer bot's pinned cross-signing
identity signed counts (see peers): a new device of another bot's account cannot speak for that bot."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from nio import RoomSendResponse

from spbot.logs import get_logger
from spbot.homeserver_errors import NETWORK_ERRORS
from spbot.matrix import know_devices
from spbot.room_keys import share_room_key

from .peers import PeerTrust

log = get_logger(__name__)
EVENT_TYPE = "org.spbot.fleet"          # not m.room.message: clients leave it out of the timeline
SEND_ATTEMPTS = 3


@dataclass(frozen=True)
class FleetEvent:
    """One event of the bots' channel, from `host` (checked against the sender)."""
    event_id: str
    room_id: str
    host: str
    kind: str
    content: dict[str, Any]
    ts: float                         # when sent, on this machine's clock (spbot/event_age.py), seconds


class Wire:
    def __init__(self, host: Any, me: str, peers: dict[str, str]):
        self.host = host
        self.me = me
        self.peers = dict(peers)                 # host name → bot user id
        self.by_user = {user: name for name, user in peers.items()}
        self.trust = PeerTrust(host, me, peers)

    async def send(self, room_id: str, kind: str, **content: Any) -> str | None:
        """Send to the other bots (encrypted); the event id, or None when the homeserver refused it
        three times (logged: a heartbeat or an answer that is lost is reported as silence)."""
        client = self.host.connection.client
        body = {"kind": kind, "host": self.me, **content}
        for attempt in range(SEND_ATTEMPTS):
            try:
                await know_devices(client)
                await share_room_key(client, room_id)
                response = await client.room_send(room_id, EVENT_TYPE, body, ignore_unverified_devices=True)
                if isinstance(response, RoomSendResponse):
                    return response.event_id
                log.warning("fleet_send_refused", kind=kind, detail=str(getattr(response, "message", response)))
            except (*NETWORK_ERRORS, ConnectionError) as exc:
                log.warning("fleet_send_failed", kind=kind, error=exc.__class__.__name__)
            except Exception as exc:                 # an encryption hiccup: the next attempt shares anew
                log.warning("fleet_send_failed", kind=kind, error=f"{exc.__class__.__name__}: {exc}")
            await asyncio.sleep(0.5 * (attempt + 1))
        return None

    async def read(self, room, event) -> FleetEvent | None:
        """The fleet event in `event`, if it is one and it comes from a bot of the fleet through a device
        its identity vouches for; None otherwise (logged; an untrusted device of a bot is said once)."""
        source = getattr(event, "source", None) or {}
        if source.get("type") != EVENT_TYPE or not getattr(event, "decrypted", False):
            return None
        content = source.get("content") or {}
        own = event.sender == self.host.connection.client.user_id
        name = self.me if own else self.by_user.get(event.sender)
        if name is None or content.get("host") != name or not isinstance(content.get("kind"), str):
            log.warning("fleet_event_ignored", sender=event.sender, reason="not a bot of the fleet")
            return None
        if not await self._trusted(event, name, own):
            return None
        return FleetEvent(event.event_id, room.room_id, name, content["kind"], content,
                          self.host.screen.sent_at(event))

    async def _trusted(self, event, name: str, own: bool) -> bool:
        key = getattr(event, "sender_key", None)
        if own:
            return key == self.host.connection.client.olm.account.identity_keys["curve25519"]
        return await self.trust.allowed(name, event.sender, key)
