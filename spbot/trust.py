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

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .approvals import APPROVE_KEYS, DENY_KEYS
from .crosssign import (CrossSigning, CrossSigningError, CrossSigningStatus, UserIdentity, format_fingerprint,
                        matrix_http, query_identities, query_identity)
from .devices import key_label
from .identity_pins import IdentityPins, KeyMoved
from .logs import get_logger
from .render import Reply, mention

if TYPE_CHECKING:
    from .bot import Bot

log = get_logger(__name__)
IDENTITY_CACHE_SECONDS = 300.0
BOT_SIGNING_ALERT = "trust:bot-cross-signing"
WAIT_PREFIX = "trust_wait:"


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


class Trust:
    def __init__(self, bot: "Bot"):
        self.bot = bot
        self.pins = IdentityPins(bot.store)
        self.own_status: CrossSigningStatus | None = None
        self._identities: dict[str, tuple[float, UserIdentity]] = {}
        self._http = None

    # --- the bot's own identity ----------------------------------------------------------------

    async def setup_own_identity(self) -> None:
        """After the first sync (device keys uploaded): create or check the bot's cross-signing keys,
        delete a device the bot replaced, and tell the room about what went wrong or changed."""
        client = self.bot.connection.client
        password = self._password()
        replaced = getattr(self.bot.connection, "replaced_device", None)
        try:
            async with CrossSigning.from_nio(client, password=password) as signing:
                status = await signing.ensure(self.bot.config.state_dir, client.olm.account.identity_keys)
                self.own_status = status
                log.info("cross_signing", state=status.state, device_signed=status.device_signed,
                         fingerprint=status.fingerprint)
                deleted = []
                if status.state == "signed_new_device" or (replaced and status.device_signed):
                    deleted = await self._delete_old_devices(signing, password)
                if replaced:
                    await self._tell_device_replaced(replaced, client.device_id, status, deleted)
                if status.state == "mismatch":
                    await self.bot.alerts.fire(
                        "trust:bot-identity", "critical",
                        f"my cross-signing identity on the homeserver ({status.server_fingerprint}) is not "
                        f"the one I keep ({status.fingerprint}). Somebody may have reset it.",
                        "if nobody here did, change the bot account's password; to start over, run "
                        "`spbot trust reset --config …` on the server (needs the password)")
                else:
                    await self.bot.alerts.clear(BOT_SIGNING_ALERT,
                                                f"my device {client.device_id} is cross-signed again")
        except CrossSigningError as exc:
            log.warning("cross_signing_failed", error=exc.__class__.__name__, detail=str(exc))
            await self.bot.alerts.fire(
                BOT_SIGNING_ALERT, "critical",
                f"I could not cross-sign my device {client.device_id}: {exc}. Element shows my messages "
                "with a red \"unverified device\" shield until this is fixed.",
                "check the bot's log and the homeserver; `spbot doctor --config …` on the server says more")

    async def _delete_old_devices(self, signing: CrossSigning, password: str | None) -> list[str]:
        if not password:
            log.warning("old_devices_kept", reason="no password configured to delete them")
            return []
        current = self.bot.connection.client.device_id
        deleted = []
        for device in await signing.list_devices():
            if device["device_id"] != current:
                await signing.delete_device(device["device_id"], password)
                log.info("old_device_deleted", device_id=device["device_id"])
                deleted.append(device["device_id"])
        return deleted

    async def _tell_device_replaced(self, old: str, new: str, status: CrossSigningStatus,
                                    deleted: list[str]) -> None:
        signed = (f"signed it with my cross-signing identity {status.fingerprint}" if status.device_signed
                  else "could NOT cross-sign it (see the alert)")
        gone = f"deleted {old}" if old in deleted else f"could not delete {old} (delete it by hand)"
        await self.bot.notify(mention(self.bot.config.admins, (
            f"🔑 my encryption keys on disk did not match my device {old} on the homeserver (a restore "
            f"from an old backup, or a lost crypto folder). I started a new device {new}, {signed}, and "
            f"{gone}. Commands sent to me just before this could not be read: send them again.")))

    def _password(self) -> str | None:
        try:
            return self.bot.config.password.read() if self.bot.config.password else None
        except Exception:
            return None

    # --- the admins' identities ----------------------------------------------------------------

    def forget_cached(self, user_ids) -> None:
        """Device lists changed in a sync: look these users up again before trusting them."""
        for user_id in user_ids:
            self._identities.pop(user_id, None)

    def _client_http(self):
        if self._http is None:
            self._http = matrix_http(self.bot.config.homeserver, self.bot.connection.client.access_token)
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
        device_id = await self.bot.devices.identify(user_id, sender_key)
        try:
            identity = await self.identity(user_id, sender_key)
        except CrossSigningError as exc:
            log.warning("identity_lookup_failed", user_id=user_id, error=str(exc))
            if device_id is None:
                return self._unbound(user_id, sender_key, None)
            if self.bot.config.device_policy == "cross-signed":
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
                f"If you reset it yourself, tell another admin in person; they send !trust {user_id}."))
        published = identity.device_with_key(sender_key)
        if device_id is None or published is None or published.device_id != device_id:
            return self._unbound(user_id, sender_key, published.device_id if published else device_id)
        return self._by_policy(user_id, device_id, cross_signed=published.cross_signed)

    def _by_policy(self, user_id: str, device_id: str, cross_signed: bool) -> DeviceVerdict:
        if cross_signed:
            return DeviceVerdict(True, "cross-signed", device_id, cross_signed=True)
        if self.bot.config.device_policy == "tofu":
            return DeviceVerdict(True, "tofu", device_id)
        return DeviceVerdict(False, "refused", device_id, Reply.error(
            f"I did not run this: your device {device_id} is not verified.",
            "Verify it from another of your sessions (in Element: Settings → Sessions → this session → "
            "Verify), or set up cross-signing on it, then send the command again."))

    def _unbound(self, user_id: str, sender_key: str | None, claimed: str | None) -> DeviceVerdict:
        label = key_label(sender_key)
        log.warning("sender_key_unbound", user_id=user_id, sender_key=(sender_key or "")[:8],
                    device=claimed)
        if self.bot.config.device_policy == "tofu":
            return DeviceVerdict(True, "unbound", label)
        where = (f"the homeserver and my own records disagree about the keys of device {claimed}"
                 if claimed else "no device of yours that I know has this key")
        return DeviceVerdict(False, "unbound", label, Reply.error(
            f"I did not run this: it came from a key I cannot bind to one of your devices ({label}; "
            f"{where}).",
            "If you just signed in, send it again in a minute. If not, somebody may be using your account "
            "or replaced a device's keys: change your password and tell the other admins."))

    async def tell_voter(self, room_id: str, event, verdict: DeviceVerdict) -> None:
        """An approving or denying reaction from a device that is not bound or not trusted is never taken
        silently: a refused one gets a reply saying why it did not count, one from an unbound key taken
        under tofu is announced."""
        if event.key not in APPROVE_KEYS | DENY_KEYS or not getattr(event, "decrypted", False):
            return
        if verdict.allowed and verdict.bound:
            return
        if verdict.allowed:
            reply = self.bot.devices.announce_unbound(event.sender, getattr(event, "sender_key", None))
        elif await self.bot.store.claim_event(event.event_id, room_id, time.time()):
            reply = mention([event.sender], "your reaction was not counted.") + verdict.reply
        else:
            return
        content = reply.content()
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": event.reacts_to}}
        await self.bot.outbox.send(room_id, content)

    async def _identity_changed(self, user_id: str, pin) -> None:
        others = [a for a in self.bot.config.admins if a != user_id]
        await self.bot.alerts.fire(
            f"trust:identity:{user_id}", "critical",
            f"the cross-signing identity of {user_id} changed (was {pin.pinned_fingerprint}, now "
            f"{pin.fingerprint}). Their commands and approvals are refused until it is accepted.",
            f"ask {user_id} in person (not in this room) whether they reset it; if they did, send "
            f"!trust {user_id}", renotify=24 * 3600, to=others or None)

    async def eligible_approvers(self, requester: str, subject: str) -> list[str]:
        """Admins whose vote on accepting `subject`'s identity counts: not the requester, not the subject,
        and not an admin whose own identity is not trusted now (changed, or none under cross-signed)."""
        others = [a for a in self.bot.config.admins if a not in (requester, subject)]
        if not others:
            return []
        identities = await query_identities(self._client_http(), others)
        eligible = []
        for admin in others:
            identity = identities[admin]
            if self.bot.config.device_policy == "cross-signed" and not identity.cross_signed_devices:
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
        await self.bot.store.put(WAIT_PREFIX + user_id, None)
        await self._announce_accepted(user_id, result.fingerprint, by)
        return result.fingerprint

    async def _announce_accepted(self, user_id: str, fingerprint: str, by: str) -> None:
        text = f"the new identity of {user_id} ({fingerprint}) is accepted" + (f" ({by})" if by else "")
        if not await self.bot.alerts.clear(f"trust:identity:{user_id}", text):
            await self.bot.notify(Reply.text(f"✅ {text}"))
        await self.pins.mark_announced(user_id)

    # --- a family of two: the only trusted admin accepts after a wait --------------------------

    async def start_waiting(self, user_id: str, key: str, requested_by: str, wait: float) -> dict:
        """Accept `key` for `user_id` after `wait` seconds unless cancelled or the identity moves again."""
        current = await self.waiting(user_id)
        if current and current["master_key"] == key:
            return current
        record = {"master_key": key, "requested_by": requested_by, "requested_at": time.time(),
                  "due": time.time() + wait}
        await self.bot.store.put(WAIT_PREFIX + user_id, record)
        log.warning("identity_acceptance_waiting", user_id=user_id, requested_by=requested_by, wait=wait)
        return record

    async def waiting(self, user_id: str) -> dict | None:
        record = await self.bot.store.get(WAIT_PREFIX + user_id)
        return record if isinstance(record, dict) else None

    async def cancel_waiting(self, user_id: str) -> bool:
        if await self.waiting(user_id) is None:
            return False
        await self.bot.store.put(WAIT_PREFIX + user_id, None)
        return True

    async def tick(self) -> None:
        """Every few seconds: accept waited-out identities, and tell the room about acceptances made at
        the server's console (`spbot trust accept`)."""
        for user_id in self.bot.config.admins:
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
            await self.bot.store.put(WAIT_PREFIX + user_id, None)
            await self.bot.notify(mention(self.bot.config.admins, (
                f"⚠️ I did not accept the identity of {user_id}: {exc}. Nothing was pinned; "
                f"check with {user_id} again and send !trust {user_id}.")))
        except CrossSigningError as exc:
            log.warning("waited_acceptance_postponed", user_id=user_id, error=str(exc))

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
