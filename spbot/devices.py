"""Which device sent a command, and trust on first use: every admin device is accepted, but the first
command from a device the bot has not seen before is announced in the room, mentioning its owner."""
from __future__ import annotations

import time

from .logs import get_logger
from .matrix import Connection
from .render import Reply, mention
from .store import Store

log = get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS known_devices (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, first_seen REAL NOT NULL,
    PRIMARY KEY (user_id, device_id));
"""


class Devices:
    def __init__(self, store: Store, connection: Connection):
        self.store = store
        self.connection = connection

    async def start(self) -> None:
        await self.store.ensure_schema(SCHEMA)

    async def identify(self, user_id: str, sender_key: str | None) -> str:
        """The device id whose Curve25519 key sent an event; queries keys once if it is not known yet."""
        device = self._lookup(user_id, sender_key)
        if device is None and sender_key:
            await self.connection.refresh_devices(user_id)
            device = self._lookup(user_id, sender_key)
        return device or "unknown"

    def _lookup(self, user_id: str, sender_key: str | None) -> str | None:
        store = self.connection.client.device_store
        for device in store.active_user_devices(user_id):
            if device.curve25519 == sender_key:
                return device.id
        return None

    async def announce_if_new(self, user_id: str, device_id: str) -> Reply | None:
        """A notice for the device's first command; None if it was seen before."""
        inserted = await self.store.execute(
            "INSERT OR IGNORE INTO known_devices(user_id, device_id, first_seen) VALUES(?, ?, ?)",
            (user_id, device_id, time.time()))
        if not inserted:
            return None
        log.info("new_admin_device", user_id=user_id, device_id=device_id)
        return mention([user_id], f"new device {device_id} of {user_id} sent a command. "
                       "If this was not you, change your password now and tell the other admins.")
