"""The bot's own device at start: after the first sync (device keys uploaded) create or check the bot's
cross-signing identity, sign its device, delete a device the bot replaced, and tell the room what went
wrong or changed."""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from ..logs import get_logger
from ..render import Reply, mention
from .errors import CrossSigningError
from .own_identity import CrossSigning, CrossSigningStatus

log = get_logger(__name__)
BOT_SIGNING_ALERT = "trust:bot-cross-signing"


class OwnDevice:
    """`connection` is the logged-in Matrix connection (its nio client, and `replaced_device` when the
    login had to start a new device); `alerts` fires and clears alerts; `notify` speaks to the admins."""

    def __init__(self, config: Any, connection: Any, alerts: Any, notify: Callable[[Reply], Awaitable[Any]]):
        self.config = config
        self.connection = connection
        self.alerts = alerts
        self.notify = notify

    async def set_up(self) -> None:
        client = self.connection.client
        password = self._password()
        replaced = getattr(self.connection, "replaced_device", None)
        try:
            async with CrossSigning.from_nio(client, password=password) as signing:
                status = await signing.ensure(self.config.state_dir, client.olm.account.identity_keys)
                log.info("cross_signing", state=status.state, device_signed=status.device_signed,
                         fingerprint=status.fingerprint)
                deleted = []
                if status.state == "signed_new_device" or (replaced and status.device_signed):
                    deleted = await self._delete_old_devices(signing, password)
                if replaced:
                    await self._tell_device_replaced(replaced, client.device_id, status, deleted,
                                                     getattr(self.connection, "replaced_why", None))
                if status.state == "mismatch":
                    await self.alerts.fire(
                        "trust:bot-identity", "critical",
                        f"my cross-signing identity on the homeserver ({status.server_fingerprint}) is not "
                        f"the one I keep ({status.fingerprint}). Somebody may have reset it.",
                        "if nobody here did, change the bot account's password; to start over, run "
                        "`spbot trust reset --config …` on the server (needs the password)")
                else:
                    await self.alerts.clear(BOT_SIGNING_ALERT, f"my device {client.device_id} is cross-signed again")
        except CrossSigningError as exc:
            log.warning("cross_signing_failed", error=exc.__class__.__name__, detail=str(exc))
            await self.alerts.fire(
                BOT_SIGNING_ALERT, "critical",
                f"I could not cross-sign my device {client.device_id}: {exc}. Element shows my messages "
                "with a red \"unverified device\" shield until this is fixed.",
                "check the bot's log and the homeserver; `spbot doctor --config …` on the server says more")

    async def _delete_old_devices(self, signing: CrossSigning, password: str | None) -> list[str]:
        if not password:
            log.warning("old_devices_kept", reason="no password configured to delete them")
            return []
        current = self.connection.client.device_id
        deleted = []
        for device in await signing.list_devices():
            if device["device_id"] != current:
                await signing.delete_device(device["device_id"], password)
                log.info("old_device_deleted", device_id=device["device_id"])
                deleted.append(device["device_id"])
        return deleted

    async def _tell_device_replaced(self, old: str, new: str, status: CrossSigningStatus,
                                    deleted: list[str], why: str | None) -> None:
        signed = (f"signed it with my cross-signing identity {status.fingerprint}" if status.device_signed
                  else "could NOT cross-sign it (see the alert)")
        if why == "signed out":          # the homeserver deleted the old device with its session
            await self.notify(mention(self.config.admins, (
                f"🔑 my session (device {old}) was signed out on the homeserver: from a client's list of "
                "sessions, by a password change or reset that signs out every device, or by a server "
                f"admin. I logged in again as a new device {new} and {signed}. Commands sent to me while I "
                "was signed out could not be read: send them again. If none of you signed me out, change "
                "the bot account's password.")))
            return
        gone = f"deleted {old}" if old in deleted else f"could not delete {old} (delete it by hand)"
        aside = getattr(self.connection, "damaged_crypto_store", None)
        if why == "keys damaged":
            what = (f"the file of my encryption keys for device {old} was damaged, so I set it aside as "
                    f"{aside} (a damaged file often means a failing disk: check it)")
        elif why == "keys behind":
            what = (f"my encryption keys for device {old} were older than my own messages in the room: my "
                    "state was put back as it was earlier (a snapshot or a backup restored). A device's keys "
                    "must not go back in time (my messages would not be readable, and I could not read "
                    f"yours), so I set them aside as {aside}")
        else:
            what = (f"my encryption keys on disk did not match my device {old} on the homeserver (a restore "
                    "from an old backup, or a lost crypto folder)")
        await self.notify(mention(self.config.admins, (
            f"🔑 {what}. I started a new device {new}, {signed}, and {gone}. Commands sent to me just "
            "before this could not be read: send them again.")))

    def _password(self) -> str | None:
        try:
            return self.config.password.read() if self.config.password else None
        except Exception:
            return None
