"""Trust in the chat channel. The bot cross-signs its own device (so clients show no warning shield), and
each admin's cross-signing identity is pinned on first use: a command or vote from a device that is not
vouched for (per `device_policy`), from a key the bot cannot bind to one known device, or from an admin
whose identity changed, is refused.

A message is bound to a device by its Curve25519 sender key twice: the local crypto store (nio) must know
a device with that key, and the homeserver's current record of that same device (checked here, signature
by signature) must carry it too. Where the two disagree (a device whose keys were replaced on the server,
a key nobody published) the sender is "unbound": refused under `cross-signed`, announced every time under
`tofu`.

A changed identity is accepted by `!trust` (another trusted admin approves exactly the key the request
showed), by the only trusted admin alone after `[trust] sole_admin_wait` with a loud notice (a family of
two admins), or by `spbot trust accept` at the server's console; every way is told in the room."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from ..votes import APPROVE_KEYS, DENY_KEYS
from ..logs import get_logger
from ..render import Reply, mention
from ..store import Store
from .devices import Devices, key_label
from .errors import CrossSigningError
from .homeserver import matrix_http
from .identities import UserIdentity, query_identities, query_identity
from .own_device import OwnDevice
from .pins import IdentityPins, KeyMoved, console_note_time
from .signing import format_fingerprint

log = get_logger(__name__)
IDENTITY_CACHE_SECONDS = 300.0
# Acceptances made at the console are another process's writes: looked for this often. Waited-out
# identities are accepted when due, whatever this says.
CONSOLE_CHECK_SECONDS = 10.0
WAIT_PREFIX = "trust_wait:"

Notify = Callable[[Reply], Awaitable[Any]]                 # a notice to every admin room
Send = Callable[[str, dict], Awaitable[Any]]               # (room id, event content): queue one message


@dataclass
class DeviceVerdict:
    allowed: bool
    state: str                  # cross-signed | tofu | refused | identity-changed | unbound
    device_id: str              # the bound device, or a label naming the unknown key
    reply: Reply | None = None  # why it was refused (to the sender)
    cross_signed: bool = False

    @property
    def bound(self) -> bool:
        return self.state in ("cross-signed", "tofu", "refused")


def _parts_of(bot: Any) -> tuple:
    """The parts of the bot that trust uses, named in this one place."""
    return bot.config, bot.store, bot.connection, bot.devices, bot.alerts, bot.notify, bot.outbox.send


class Trust:
    """`connection` is the Matrix connection (its nio client and token, `first_sync_done`); `alerts` fires
    and clears alerts; `notify` and `send` are how trust speaks (to every admin room, to one room)."""

    def __init__(self, config: Any, store: Store, connection: Any, devices: Devices, alerts: Any,
                 notify: Notify, send: Send):
        self.config, self.store, self.connection, self.devices = config, store, connection, devices
        self.alerts, self.notify, self.send = alerts, notify, send
        self.pins = IdentityPins(store)
        self.own_device = OwnDevice(config, connection, alerts, notify)
        self._identities: dict[str, tuple[float, UserIdentity]] = {}
        self._http = None
        self._new_wait = asyncio.Event()        # a waited-out acceptance was started: its due time counts

    @classmethod
    def for_bot(cls, bot: Any) -> "Trust":
        return cls(*_parts_of(bot))

    async def setup_own_identity(self) -> None:
        """After the first sync: cross-sign the bot's own device (see own_device)."""
        await self.own_device.set_up()

    # --- the admins' identities ----------------------------------------------------------------

    def forget_cached(self, user_ids) -> None:
        """Device lists changed in a sync: look these users up again before trusting them."""
        for user_id in user_ids:
            self._identities.pop(user_id, None)

    def _client_http(self):
        if self._http is None:
            self._http = matrix_http(self.config.homeserver, lambda: self.connection.client.access_token)
        return self._http

    async def identity(self, user_id: str, sender_key: str | None = None, fresh: bool = False
                       ) -> UserIdentity:
        """The admin's identity as the homeserver publishes it (checked here); cached a few minutes, looked
        up again when `fresh` or when the sender key is not among the cached devices."""
        cached = self._identities.get(user_id)
        stale = fresh or not cached or time.monotonic() - cached[0] >= IDENTITY_CACHE_SECONDS
        if stale or (sender_key and cached[1].device_with_key(sender_key) is None):
            cached = (time.monotonic(), await query_identity(self._client_http(), user_id))
            self._identities[user_id] = cached
        return cached[1]

    async def check_sender(self, user_id: str, sender_key: str | None) -> DeviceVerdict:
        """May the device behind this sender key give commands and votes now?"""
        device_id = await self.devices.identify(user_id, sender_key)
        try:
            identity = await self.identity(user_id, sender_key)
        except CrossSigningError as exc:
            log.warning("identity_lookup_failed", user_id=user_id, error=str(exc))
            if device_id is None:
                return self._unbound(user_id, sender_key, None)
            if self.config.device_policy == "cross-signed":
                return DeviceVerdict(False, "refused", device_id, Reply.error(
                    f"I did not run this: I could not check that your device {device_id} is verified "
                    f"({exc}).", "Send it again in a minute."))
            return self._by_policy(user_id, device_id, cross_signed=False)
        pin = await self.pins.check(user_id, identity)
        if pin.state == "changed":
            await self._identity_changed(user_id, pin)
            return DeviceVerdict(False, "identity-changed", device_id or key_label(sender_key), Reply.error(
                f"I did not run this: the cross-signing identity of {user_id} changed "
                f"(was {pin.pinned_fingerprint}, now {pin.fingerprint}).",
                f"If you reset it yourself, tell another admin in person; they send !trust {user_id}."
            ).to([user_id]))
        published = identity.device_with_key(sender_key)
        if device_id is None or published is None or published.device_id != device_id:
            return self._unbound(user_id, sender_key, published.device_id if published else device_id)
        return self._by_policy(user_id, device_id, cross_signed=published.cross_signed)

    def _by_policy(self, user_id: str, device_id: str, cross_signed: bool) -> DeviceVerdict:
        if cross_signed:
            return DeviceVerdict(True, "cross-signed", device_id, cross_signed=True)
        if self.config.device_policy == "tofu":
            return DeviceVerdict(True, "tofu", device_id)
        return DeviceVerdict(False, "refused", device_id, Reply.error(
            f"I did not run this: your device {device_id} is not verified.",
            "Verify it from another of your sessions (in Element: Settings → Sessions → this session → "
            "Verify), or set up cross-signing on it, then send the command again."))

    def _unbound(self, user_id: str, sender_key: str | None, claimed: str | None) -> DeviceVerdict:
        label = key_label(sender_key)
        log.warning("sender_key_unbound", user_id=user_id, sender_key=(sender_key or "")[:8],
                    device=claimed)
        if self.config.device_policy == "tofu":
            return DeviceVerdict(True, "unbound", label)
        where = (f"the homeserver and my own records disagree about the keys of device {claimed}"
                 if claimed else "no device of yours that I know has this key")
        return DeviceVerdict(False, "unbound", label, Reply.error(
            f"I did not run this: it came from a key I cannot bind to one of your devices ({label}; "
            f"{where}).",
            "If you just signed in, send it again in a minute. If not, somebody may be using your account "
            "or replaced a device's keys: change your password and tell the other admins.").to([user_id]))

    async def tell_voter(self, room_id: str, event, verdict: DeviceVerdict) -> None:
        """An approving or denying reaction from a device that is not bound or not trusted is never taken
        silently: a refused one gets a reply saying why it did not count, one from an unbound key taken
        under tofu is announced."""
        if event.key not in APPROVE_KEYS | DENY_KEYS or not getattr(event, "decrypted", False):
            return
        if verdict.allowed and verdict.bound:
            return
        if verdict.allowed:
            reply = self.devices.announce_unbound(event.sender, getattr(event, "sender_key", None))
        elif await self.store.claim_event(event.event_id, room_id, time.time()):
            reply = mention([event.sender], "your reaction was not counted.") + verdict.reply
        else:
            return
        content = reply.content()
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": event.reacts_to}}
        await self.send(room_id, content)

    async def _identity_changed(self, user_id: str, pin) -> None:
        others = [a for a in self.config.admins if a != user_id]
        await self.alerts.fire(
            f"trust:identity:{user_id}", "critical",
            f"the cross-signing identity of {user_id} changed (was {pin.pinned_fingerprint}, now "
            f"{pin.fingerprint}). Their commands and approvals are refused until it is accepted.",
            f"ask {user_id} in person (not in this room) whether they reset it; if they did, send "
            f"!trust {user_id}", renotify=24 * 3600, to=others or None)

    async def eligible_approvers(self, requester: str, subject: str) -> list[str]:
        """Admins whose vote on accepting `subject`'s identity counts: not the requester, not the subject,
        and not an admin whose own identity is not trusted now (changed, or none under cross-signed)."""
        others = [a for a in self.config.admins if a not in (requester, subject)]
        if not others:
            return []
        identities = await query_identities(self._client_http(), others)
        eligible = []
        for admin in others:
            identity = identities[admin]
            if self.config.device_policy == "cross-signed" and not identity.cross_signed_devices:
                continue
            if (await self.pins.check(admin, identity)).state != "changed":
                eligible.append(admin)
        return eligible

    async def accept(self, user_id: str, expected: str | None = None, by: str = "") -> str:
        """Pin the admin's current identity, which must be `expected` when given (KeyMoved otherwise),
        and tell the room. Returns the accepted fingerprint."""
        identity = await self.identity(user_id, fresh=True)
        self._identities.pop(user_id, None)
        result = await self.pins.accept(user_id, identity, expected, by)
        await self.store.put(WAIT_PREFIX + user_id, None)
        await self._announce_accepted(user_id, result.fingerprint, by)
        return result.fingerprint

    async def _announce_accepted(self, user_id: str, fingerprint: str, by: str) -> None:
        text = f"the new identity of {user_id} ({fingerprint}) is accepted" + (f" ({by})" if by else "")
        if not await self.alerts.clear(f"trust:identity:{user_id}", text):
            await self.notify(Reply.text(f"✅ {text}"))
        await self.pins.mark_announced(user_id)

    # --- a family of two: the only trusted admin accepts after a wait --------------------------

    async def start_waiting(self, user_id: str, key: str, requested_by: str, wait: float) -> dict:
        """Accept `key` for `user_id` after `wait` seconds unless cancelled or the identity moves again."""
        current = await self.waiting(user_id)
        if current and current["master_key"] == key:
            return current
        record = {"master_key": key, "requested_by": requested_by, "requested_at": time.time(),
                  "due": time.time() + wait}
        await self.store.put(WAIT_PREFIX + user_id, record)
        self._new_wait.set()
        log.warning("identity_acceptance_waiting", user_id=user_id, requested_by=requested_by, wait=wait)
        return record

    async def waiting(self, user_id: str) -> dict | None:
        record = await self.store.get(WAIT_PREFIX + user_id)
        return record if isinstance(record, dict) else None

    async def cancel_waiting(self, user_id: str) -> bool:
        if await self.waiting(user_id) is None:
            return False
        await self.store.put(WAIT_PREFIX + user_id, None)
        return True

    async def tick(self) -> None:
        """Every few seconds: accept waited-out identities, and tell the room about acceptances made at
        the server's console (`spbot trust accept`)."""
        for user_id in self.config.admins:
            record = await self.pins.unannounced(user_id)
            if record is not None:
                self._identities.pop(user_id, None)
                await self._announce_accepted(user_id, format_fingerprint(record["master_key"]),
                                              record.get("accepted_by") or "")
            waiting = await self.waiting(user_id)
            if waiting and waiting["due"] <= time.time():
                await self._accept_waited(user_id, waiting)

    async def _accept_waited(self, user_id: str, waiting: dict) -> None:
        by = f"asked by {waiting['requested_by']}, nobody objected in time"
        try:
            await self.accept(user_id, expected=waiting["master_key"], by=by)
        except (KeyMoved, ValueError) as exc:
            await self.store.put(WAIT_PREFIX + user_id, None)
            await self.notify(mention(self.config.admins, (
                f"⚠️ I did not accept the identity of {user_id}: {exc}. Nothing was pinned; "
                f"check with {user_id} again and send !trust {user_id}.")))
        except CrossSigningError as exc:
            log.warning("waited_acceptance_postponed", user_id=user_id, error=str(exc))

    async def run_ticker(self) -> None:
        """`tick` for as long as the bot runs, from the first sync on (the rooms to speak in are known
        then): at the next waited-out acceptance's due time, or when `spbot trust accept` left its note
        (looked at every CONSOLE_CHECK_SECONDS with a stat: the console is another process)."""
        await self.connection.first_sync_done.wait()
        while True:
            seen = self._console_note()            # before the tick: a note left during it counts
            try:
                await self.tick()
            except Exception:
                log.exception("trust_tick_failed")
            self._new_wait.clear()
            due = time.monotonic() + await self._until_due()
            while not await self._woken(max(0.05, min(CONSOLE_CHECK_SECONDS, due - time.monotonic()))):
                if time.monotonic() >= due - 0.01 or self._console_note() != seen:
                    break                  # due, or an acceptance at the console (spbot trust accept)

    async def _woken(self, wait: float) -> bool:
        try:
            await asyncio.wait_for(self._new_wait.wait(), wait)
            return True
        except asyncio.TimeoutError:
            return False

    def _console_note(self) -> int | None:
        return console_note_time(self.config.state_dir)

    async def _until_due(self) -> float:
        """Until the next waited-out acceptance is due (a long time when none waits)."""
        wait = 86400.0
        for user_id in self.config.admins:
            waiting = await self.waiting(user_id)
            if waiting:
                wait = min(wait, waiting["due"] - time.time())
        return max(wait, 0.05)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
