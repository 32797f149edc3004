"""Trust in the chat channel. The bot cross-signs its own device (so clients show no warning shield), and
each admin's cross-signing identity is pinned on first use: a command or vote from a device that is not
vouched for (per `device_policy`), or from an admin whose identity changed, is refused."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .crosssign import (CrossSigning, CrossSigningError, CrossSigningStatus, UserIdentity, matrix_http,
                        query_identity)
from .identity_pins import IdentityPins
from .logs import get_logger
from .render import Reply

if TYPE_CHECKING:
    from .bot import Bot

log = get_logger(__name__)
IDENTITY_CACHE_SECONDS = 300.0


@dataclass
class DeviceVerdict:
    allowed: bool
    state: str                  # cross-signed | tofu | refused | identity-changed | unknown
    reply: Reply | None = None


class Trust:
    def __init__(self, bot: "Bot"):
        self.bot = bot
        self.pins = IdentityPins(bot.store)
        self.own_status: CrossSigningStatus | None = None
        self._identities: dict[str, tuple[float, UserIdentity]] = {}
        self._http = None

    # --- the bot's own identity ----------------------------------------------------------------

    async def setup_own_identity(self) -> None:
        """After the first sync (device keys uploaded): create or check the bot's cross-signing keys."""
        client = self.bot.connection.client
        password = self._password()
        try:
            async with CrossSigning.from_nio(client, password=password) as signing:
                status = await signing.ensure(self.bot.config.state_dir, client.olm.account.identity_keys)
                self.own_status = status
                log.info("cross_signing", state=status.state, device_signed=status.device_signed,
                         fingerprint=status.fingerprint)
                if status.state == "signed_new_device":
                    await self._delete_old_devices(signing, password)
                elif status.state == "mismatch":
                    await self.bot.alerts.fire(
                        "trust:bot-identity", "critical",
                        f"my cross-signing identity on the homeserver ({status.server_fingerprint}) is not "
                        f"the one I keep ({status.fingerprint}). Somebody may have reset it.",
                        "if nobody here did, change the bot account's password; to start over, run "
                        "`spbot trust reset --config …` on the server (needs the password)")
        except CrossSigningError as exc:
            log.warning("cross_signing_failed", error=exc.__class__.__name__, detail=str(exc))

    async def _delete_old_devices(self, signing: CrossSigning, password: str | None) -> None:
        if not password:
            log.warning("old_devices_kept", reason="no password configured to delete them")
            return
        current = self.bot.connection.client.device_id
        for device in await signing.list_devices():
            if device["device_id"] != current:
                await signing.delete_device(device["device_id"], password)
                log.info("old_device_deleted", device_id=device["device_id"])

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

    async def identity(self, user_id: str, device_id: str | None = None) -> UserIdentity:
        cached = self._identities.get(user_id)
        fresh = cached and time.monotonic() - cached[0] < IDENTITY_CACHE_SECONDS
        if not fresh or (device_id and device_id not in cached[1].devices):
            if self._http is None:
                client = self.bot.connection.client
                self._http = matrix_http(self.bot.config.homeserver, client.access_token)
            cached = (time.monotonic(), await query_identity(self._http, user_id))
            self._identities[user_id] = cached
        return cached[1]

    async def check_device(self, user_id: str, device_id: str) -> DeviceVerdict:
        """May this admin's device give commands and votes now?"""
        try:
            identity = await self.identity(user_id, device_id)
        except CrossSigningError as exc:
            log.warning("identity_lookup_failed", user_id=user_id, error=str(exc))
            return self._by_policy(user_id, device_id, cross_signed=False)
        pin = await self.pins.check(user_id, identity)
        if pin.state == "changed":
            await self._identity_changed(user_id, pin)
            return DeviceVerdict(False, "identity-changed", Reply.error(
                f"I did not run this: the cross-signing identity of {user_id} changed "
                f"(was {pin.pinned_fingerprint}, now {pin.fingerprint}).",
                f"If you reset it yourself, ask another admin to send !trust {user_id} "
                "(it needs one more admin's approval)."))
        trust = identity.device(device_id)
        return self._by_policy(user_id, device_id, cross_signed=bool(trust and trust.cross_signed))

    def _by_policy(self, user_id: str, device_id: str, cross_signed: bool) -> DeviceVerdict:
        if cross_signed:
            return DeviceVerdict(True, "cross-signed")
        if self.bot.config.device_policy == "tofu":
            return DeviceVerdict(True, "tofu")
        return DeviceVerdict(False, "refused", Reply.error(
            f"I did not run this: your device {device_id} is not verified.",
            "Verify it from another of your sessions (in Element: Settings → Sessions → this session → "
            "Verify), or set up cross-signing on it, then send the command again."))

    async def _identity_changed(self, user_id: str, pin) -> None:
        others = [a for a in self.bot.config.admins if a != user_id]
        await self.bot.alerts.fire(
            f"trust:identity:{user_id}", "critical",
            f"the cross-signing identity of {user_id} changed (was {pin.pinned_fingerprint}, now "
            f"{pin.fingerprint}). Their commands and approvals are refused until it is accepted.",
            f"ask {user_id} in person (not in this room) whether they reset it; if they did, send "
            f"!trust {user_id} and have another admin approve it", renotify=24 * 3600)
        del others

    async def accept(self, user_id: str) -> str:
        identity = await self.identity(user_id)
        self._identities.pop(user_id, None)
        result = await self.pins.accept(user_id, identity)
        await self.bot.alerts.clear(f"trust:identity:{user_id}",
                                    f"the new identity of {user_id} ({result.fingerprint}) is accepted")
        return result.fingerprint

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
