"""The bot speaks first: one alert per condition (a key such as `disk:/srv:warn`), mentioning the admins,
repeated only every `renotify` while it stays bad, and a recovery notice when it clears. State is in
SQLite, so a restart neither repeats nor forgets an alert; messages go through the outbox, so an
unreachable homeserver delays them but loses none. Hysteresis belongs to the caller: it decides when
a condition counts as cleared."""
from __future__ import annotations

import time
from dataclasses import dataclass
from .config import Config
from .logs import get_logger
from .messenger import Messenger
from .render import Reply, mention
from .store import Store

log = get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_offers (
    message_id INTEGER PRIMARY KEY, command TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    key TEXT PRIMARY KEY,
    severity TEXT NOT NULL,
    active INTEGER NOT NULL,
    text TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_notified REAL NOT NULL,
    cleared REAL
);
"""
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
ICONS = {"info": "ℹ️", "warning": "⚠️", "critical": "🚨"}
DEFAULT_RENOTIFY = 24 * 3600.0


@dataclass
class AlertState:
    key: str
    severity: str
    active: bool
    text: str
    first_seen: float
    last_notified: float


class Alerts:
    def __init__(self, store: Store, messenger: Messenger, config: Config):
        self.store = store
        self.messenger = messenger
        self.config = config
        # Told of each alert as it is posted (first time or worse, not reminders):
        # async (key, severity, text, message_ids) -> None; e.g. the out-of-band relay.
        self.listeners: list = []

    async def start(self) -> None:
        await self.store.ensure_schema(SCHEMA)

    async def state(self, key: str) -> AlertState | None:
        row = await self.store.fetchone("SELECT * FROM alerts WHERE key = ?", (key,))
        if row is None:
            return None
        return AlertState(row["key"], row["severity"], bool(row["active"]), row["text"],
                          row["first_seen"], row["last_notified"])

    async def active(self, prefix: str = "") -> list[AlertState]:
        rows = await self.store.fetchall("SELECT key FROM alerts WHERE active = 1 AND key LIKE ? ORDER BY key",
                                         (prefix + "%",))
        return [await self.state(r["key"]) for r in rows]

    async def fire(self, key: str, severity: str, text: str, todo: str = "",
                   renotify: float = DEFAULT_RENOTIFY, now: float | None = None,
                   offer: str | None = None, to: list[str] | None = None) -> bool:
        """The condition is bad now. Notifies when it is new, worse, or due again; True if it did.
        `to`: the admins to mention (default: all of them), e.g. not the one whose account is suspect.
        `offer` is a command (e.g. "!volume grow /srv +10") that an admin's ✅ on the alert starts, through
        the usual policy and approval flow, as if that admin had sent it."""
        now = time.time() if now is None else now
        current = await self.state(key)
        worse = current is not None and current.active and \
            SEVERITY_RANK[severity] > SEVERITY_RANK[current.severity]
        if current is not None and current.active and not worse and now - current.last_notified < renotify:
            await self.store.execute("UPDATE alerts SET text = ? WHERE key = ?", (text, key))
            return False
        reminder = current is not None and current.active and not worse
        await self.store.execute(
            "INSERT INTO alerts(key, severity, active, text, first_seen, last_notified) VALUES(?,?,1,?,?,?) "
            "ON CONFLICT(key) DO UPDATE SET severity = excluded.severity, active = 1, text = excluded.text, "
            "last_notified = excluded.last_notified, cleared = NULL, first_seen = CASE WHEN alerts.active "
            "THEN alerts.first_seen ELSE excluded.first_seen END",
            (key, severity, text, now, now))
        prefix = f"{ICONS[severity]} {'still: ' if reminder else ''}{text}"
        outside = f"{ICONS[severity]} {text}" + (f"\nWhat to do: {todo}" if todo else "")
        if offer:
            todo = f"react ✅ to this message to run {offer}" + (f"; or {todo}" if todo else "")
        ids = await self.messenger.notify(mention(to if to else self.config.admins,
                                            prefix + (f"\nWhat to do: {todo}" if todo else "")))
        for message_id in ids if offer else []:
            await self.store.execute("INSERT OR REPLACE INTO alert_offers(message_id, command, created) "
                                     "VALUES(?, ?, ?)", (message_id, offer, now))
        log.warning("alert", key=key, severity=severity, reminder=reminder)
        if not reminder:
            for listener in self.listeners:
                await listener(key, severity, outside, ids)
        return True

    async def clear(self, key: str, text: str, now: float | None = None) -> bool:
        """The condition is good again; posts a recovery notice if an alert was active. True if it did."""
        now = time.time() if now is None else now
        changed = await self.store.execute(
            "UPDATE alerts SET active = 0, cleared = ? WHERE key = ? AND active = 1", (now, key))
        if not changed:
            return False
        await self.messenger.notify(Reply.text(f"✅ resolved: {text}"))
        log.info("alert_cleared", key=key)
        return True

    async def offered_command(self, event_id: str, room_id: str) -> str | None:
        """The command offered by the alert message with this event id in this room, if any (a ✅
        from another room, where the alert was never shown, opens nothing)."""
        row = await self.store.fetchone(
            "SELECT a.command FROM alert_offers a JOIN outbox o ON o.id = a.message_id "
            "WHERE o.event_id = ? AND o.room_id = ?", (event_id, room_id))
        return row["command"] if row else None
