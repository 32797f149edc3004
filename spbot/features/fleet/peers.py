"""Which device may speak for another bot of the fleet: one that the bot account's cross-signing identity
vouches for, with that identity pinned like an admin's. Each bot cross-signs its own device when it starts
(spbot/trust/own_device.py); the first identity seen of each peer bot is pinned (trust on first use, told
once in the room). Then:

- a device of the peer's account signed by the pinned identity speaks for it, silently: a bot restarted
  with a lost crypto store signs its new device with the keys it kept;
- a device it did not sign (somebody logged in to the account) is ignored, and said once;
- a changed identity (the bot lost its keys and was reset, or the account was taken over) is ignored,
  and said once per new identity, until `!fleet trust <host>` pins exactly the key it showed (with
  another admin's approval).

A fleet event is bound to a device by its Curve25519 sender key twice, as an admin's command is: nio's
crypto store must know a device of the account with that key, and the homeserver's record of that same
device (its signatures checked here, spbot/trust/identities.py) must carry it too."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from spbot.logs import get_logger
from spbot.render import Reply
from spbot.trust import CrossSigningError, Devices, IdentityPins, UserIdentity, query_identity
from spbot.trust.homeserver import matrix_http

log = get_logger(__name__)
PIN_PREFIX = "fleet_identity:"      # the pinned master key of each peer bot's account
IDENTITY_CACHE_SECONDS = 60.0
REQUERY_SECONDS = 5.0               # at most this often for a device not (yet) known to be signed
SIGNING_GRACE = 5.0                 # a new bot device signs itself within a second of its first sync
ANNOUNCE_AFTER = 3.0                # first pins of several peers are told in one message


class PeerTrust:
    def __init__(self, host: Any, me: str, peers: dict[str, str]):
        self.host = host
        self.me = me
        self.peers = dict(peers)                        # host name → bot user id
        self.pins = IdentityPins(host.store, prefix=PIN_PREFIX)
        self.devices = Devices(host.store, host.connection)
        self._identities: dict[str, tuple[float, UserIdentity]] = {}
        self._told: set[tuple[str, str]] = set()       # (user, what) already said in the room
        self._checking: set[tuple[str, str]] = set()   # (user, sender key) waiting out SIGNING_GRACE
        self._news: list[str] = []
        self._http = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    def forget_cached(self, user_ids) -> None:
        for user_id in user_ids:
            self._identities.pop(user_id, None)

    def _client_http(self):
        if self._http is None:
            self._http = matrix_http(self.host.config.homeserver, lambda: self.host.connection.client.access_token)
        return self._http

    async def identity(self, user_id: str, sender_key: str | None = None, fresh: bool = False) -> UserIdentity:
        """The account's identity as its homeserver publishes it (every signature checked), cached; looked
        up again when `fresh`, when stale, or (at most every REQUERY_SECONDS) when the sender key is not
        a cross-signed device of the cached copy. A failed lookup falls back on the cached copy."""
        cached = self._identities.get(user_id)
        age = time.monotonic() - cached[0] if cached else None
        device = cached[1].device_with_key(sender_key) if cached and sender_key else None
        unsure = bool(sender_key) and (device is None or not device.cross_signed)
        if fresh or age is None or age >= IDENTITY_CACHE_SECONDS or (unsure and age >= REQUERY_SECONDS):
            try:
                cached = (time.monotonic(), await query_identity(self._client_http(), user_id))
            except CrossSigningError:
                if cached is None or fresh:
                    raise
                return cached[1]
            self._identities[user_id] = cached
        return cached[1]

    async def allowed(self, name: str, user_id: str, sender_key: str | None) -> bool:
        """May this device speak for the peer bot `name` (account `user_id`)? Says why not, once."""
        try:
            identity = await self.identity(user_id, sender_key)
        except CrossSigningError as exc:
            log.warning("fleet_identity_lookup_failed", host=name, error=str(exc))
            return False
        pin = await self.pins.check(user_id, identity)
        if pin.state == "no_identity":
            await self._tell(user_id, "no-identity", Reply.error(
                f"{name}'s bot account ({user_id}) has no cross-signing identity, so I cannot tell its "
                f"devices apart; I ignore what it says for {name}.",
                f"Check {name}'s bot log: it signs its own device when it starts (`spbot doctor` there "
                "says more)."))
            return False
        if pin.state == "changed":
            await self._tell(user_id, "identity:" + pin.master_key, Reply.error(
                f"the cross-signing identity of {name}'s bot changed (was {pin.pinned_fingerprint}, now "
                f"{pin.fingerprint}); I ignore what it says for {name}.",
                f"If {name}'s bot lost its keys and was reset, send !on {self.me} fleet trust {name} (another "
                "admin approves); if not, someone else took over that account: change its password."))
            return False
        if pin.state == "pinned":
            self._announce_pin(name, pin.fingerprint)
        device_id = await self.devices.identify(user_id, sender_key)
        published = identity.device_with_key(sender_key)
        if device_id is not None and published is not None and published.device_id == device_id \
                and published.cross_signed:
            return True
        log.warning("fleet_peer_device_refused", host=name, sender=user_id, device=device_id,
                    sender_key=(sender_key or "")[:8])
        key = (user_id, sender_key or "")
        if key not in self._checking:
            self._checking.add(key)
            self.host.spawn(self._tell_if_still_unsigned(name, user_id, sender_key, device_id),
                            name=f"fleet device check {name}")
        return False

    async def _tell_if_still_unsigned(self, name: str, user_id: str, sender_key: str | None,
                                      device_id: str | None) -> None:
        """A bot's new device may speak a moment before it has signed itself: look once more before
        telling the room."""
        await asyncio.sleep(SIGNING_GRACE)
        try:
            identity = await self.identity(user_id, fresh=True)
        except CrossSigningError:
            identity = None
        published = identity.device_with_key(sender_key) if identity else None
        self._checking.discard((user_id, sender_key or ""))
        if published is not None and published.cross_signed:
            return
        device = device_id or (published.device_id if published else None) or "unknown"
        await self._tell(user_id, "device", Reply.error(
            f"a new device of {name}'s bot account ({user_id}, device {device}) is not cross-signed by "
            f"{name}'s identity, yet it speaks for {name}; I ignore it.",
            f"If {name}'s bot was just reinstalled it signs its device when it starts: check its log. If "
            "not, someone else logged in to that account: change its password."))

    async def _tell(self, user_id: str, what: str, reply: Reply) -> None:
        if (user_id, what) in self._told:
            return
        self._told.add((user_id, what))
        await self.host.notify(reply)

    def _announce_pin(self, name: str, fingerprint: str) -> None:
        log.info("fleet_peer_identity_pinned", host=name, fingerprint=fingerprint)
        self._news.append(f"{name} {fingerprint}")
        if len(self._news) == 1:
            self.host.spawn(self._announce_later(), name="fleet identities pinned")

    async def _announce_later(self) -> None:
        await asyncio.sleep(ANNOUNCE_AFTER)
        news, self._news = self._news, []
        await self.host.notify(Reply.text(
            "🔑 I know the other bots of this room by their cross-signing identities now: " + "; ".join(news)
            + ". Only a device signed by its bot's identity speaks for it."))

    # --- !fleet trust ---------------------------------------------------------------------------

    async def pending(self, name: str) -> tuple[str | None, UserIdentity]:
        """(the pinned master key, the identity the homeserver publishes now) of a peer bot."""
        user_id = self.peers[name]
        identity = await self.identity(user_id, fresh=True)
        return await self.pins.pinned_key(user_id), identity

    async def accept(self, name: str, key: str, by: str) -> str:
        """Pin exactly `key` for the peer (KeyMoved if its identity is another one now); its fingerprint."""
        user_id = self.peers[name]
        identity = await self.identity(user_id, fresh=True)
        result = await self.pins.accept(user_id, identity, expected=key, by=by)
        self._told = {t for t in self._told if t[0] != user_id}
        log.warning("fleet_peer_identity_accepted", host=name, fingerprint=result.fingerprint, by=by)
        return result.fingerprint
