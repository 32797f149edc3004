"""Which device sent a command, and what the room is told about it: the first command from each admin
device the bot has not seen before is announced, mentioning its owner, whatever the device policy; a
message whose sender key the bot cannot bind to one known device is announced every time (tofu) or
refused (cross-signed, see spbot.trust.service)."""
from __future__ import annotations

import time
from typing import Any, Protocol

from ..logs import get_logger
from ..render import Reply, mention
from ..store import Store

log = get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS known_devices (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, first_seen REAL NOT NULL,
    PRIMARY KEY (user_id, device_id));
"""


def key_label(sender_key: str | None) -> str:
    """A short public name for a device key that no device id can be given for."""
    return f"unknown device (key {sender_key[:8]}…)" if sender_key else "unknown device (no key)"


class KnownKeys(Protocol):
    """What of the Matrix connection (spbot.matrix.Connection) tells devices apart: nio's crypto store."""
    client: Any

    async def refresh_devices(self, user_id: str) -> None: ...


class Devices:
    def __init__(self, store: Store, connection: KnownKeys):
        self.store = store
        self.connection = connection

    async def start(self) -> None:
        await self.store.ensure_schema(SCHEMA)

    async def identify(self, user_id: str, sender_key: str | None) -> str | None:
        """The device id that the local crypto store binds to this Curve25519 sender key (querying keys
        once if it is not known yet), or None: no known device has this key."""
        device = self.bound_device(user_id, sender_key)
        if device is None and sender_key:
            await self.refresh(user_id)
            device = self.bound_device(user_id, sender_key)
        return device

    async def refresh(self, user_id: str) -> None:
        """Ask the homeserver for the user's device keys now (a device may have just appeared)."""
        await self.connection.refresh_devices(user_id)

    def bound_device(self, user_id: str, sender_key: str | None) -> str | None:
        if not sender_key:
            return None
        device = self.connection.client.device_store.device_from_sender_key(user_id, sender_key)
        return device.id if device is not None else None

    def bound_key(self, user_id: str, device_id: str) -> str | None:
        """The Curve25519 key the local crypto store binds messages of this device to."""
        device = self.connection.client.device_store[user_id].get(device_id)
        return device.curve25519 if device is not None and not device.deleted else None

    async def announce_if_new(self, user_id: str, device_id: str, cross_signed: bool) -> Reply | None:
        """A notice for the device's first command; None if it was seen before."""
        inserted = await self.store.execute(
            "INSERT OR IGNORE INTO known_devices(user_id, device_id, first_seen) VALUES(?, ?, ?)",
            (user_id, device_id, time.time()))
        if not inserted:
            return None
        log.info("new_admin_device", user_id=user_id, device_id=device_id, cross_signed=cross_signed)
        how = "verified by their cross-signing identity" if cross_signed else "not verified: trusted on first use"
        return mention([user_id], f"new device {device_id} of {user_id} ({how}) sent a command. "
                       "If this was not you, change your password now and tell the other admins.")

    @staticmethod
    def announce_unbound(user_id: str, sender_key: str | None) -> Reply:
        """Said every time a command runs from a key that no known device of the sender has (tofu)."""
        log.warning("unbound_sender_key", user_id=user_id, sender_key=(sender_key or "")[:8])
        return mention([user_id], f"a command of {user_id} came from a key I cannot bind to any of "
                       f"their devices ({key_label(sender_key)}). I ran it because device_policy is tofu. "
                       "If this was not you, change your password now and tell the other admins.")
