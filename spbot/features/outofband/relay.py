"""What went out of band, durably: each item (an alert, or the homeserver's outage) is sent through each
channel at most once, even across restarts, and listed once in the room's catch-up note afterwards.

An item's life: waiting (until due) → delivered (its room message arrived in time: nothing to send)
or sent (through every channel that accepted it) → noted (named in the catch-up note)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ...logs import get_logger
from .channels import Channel, subject

log = get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outofband_items (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL, text TEXT NOT NULL,
    created REAL NOT NULL, due REAL NOT NULL, message_ids TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL DEFAULT 'waiting');
CREATE INDEX IF NOT EXISTS outofband_items_state ON outofband_items(state, due);
CREATE TABLE IF NOT EXISTS outofband_sent (
    item INTEGER NOT NULL, channel TEXT NOT NULL, state TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (item, channel));
"""
RETRY = 60.0               # a channel that refused is tried again this much later
KEEP = 30 * 86400.0        # settled items are forgotten after this long


@dataclass
class Item:
    id: int
    kind: str              # "alert" | "outage"
    key: str
    text: str
    created: float
    due: float
    message_ids: list[int]
    state: str


def _item(row) -> Item:
    return Item(row["id"], row["kind"], row["key"], row["text"], row["created"], row["due"],
                json.loads(row["message_ids"]), row["state"])


class Relay:
    def __init__(self, store, channels: list[Channel], title: str):
        self.store = store
        self.channels = channels
        self.title = title

    async def start(self) -> None:
        await self.store.ensure_schema(SCHEMA)
        await self.store.execute("DELETE FROM outofband_sent WHERE item IN (SELECT id FROM outofband_items "
                                 "WHERE state IN ('delivered', 'noted') AND created < ?)", (time.time() - KEEP,))
        await self.store.execute("DELETE FROM outofband_items WHERE state IN ('delivered', 'noted') "
                                 "AND created < ?", (time.time() - KEEP,))

    async def add(self, kind: str, key: str, text: str, due: float, message_ids: list[int] = ()) -> Item:
        now = time.time()
        item_id = await self.store.insert(
            "INSERT INTO outofband_items(kind, key, text, created, due, message_ids) VALUES(?,?,?,?,?,?)",
            (kind, key, text, now, due, json.dumps(list(message_ids))))
        return Item(item_id, kind, key, text, now, due, list(message_ids), "waiting")

    async def find(self, kind: str, key: str) -> Item | None:
        row = await self.store.fetchone("SELECT * FROM outofband_items WHERE kind = ? AND key = ? "
                                        "ORDER BY id DESC LIMIT 1", (kind, key))
        return _item(row) if row else None

    async def due(self, now: float) -> list[Item]:
        rows = await self.store.fetchall("SELECT * FROM outofband_items WHERE state = 'waiting' AND due <= ? "
                                         "ORDER BY id", (now,))
        return [_item(r) for r in rows]

    async def next_due(self) -> float | None:
        row = await self.store.fetchone("SELECT MIN(due) AS due FROM outofband_items WHERE state = 'waiting'")
        return row["due"] if row and row["due"] is not None else None

    async def settle(self, item: Item, state: str) -> None:
        await self.store.execute("UPDATE outofband_items SET state = ? WHERE id = ?", (state, item.id))

    async def send(self, item: Item) -> bool:
        """Through every channel that has not had it yet. A channel is marked before it is tried: a
        crash in the middle loses that one message rather than sending it twice on every restart.
        True once every channel has it; otherwise the item is due again after RETRY."""
        missing = 0
        for channel in self.channels:
            if await self._had(item, channel):
                continue
            await self.store.execute("INSERT OR REPLACE INTO outofband_sent(item, channel, state, at) "
                                     "VALUES(?, ?, 'sending', ?)", (item.id, channel.id, time.time()))
            if await channel.send(subject(self.title, item.text), item.text):
                await self.store.execute("UPDATE outofband_sent SET state = 'sent', at = ? WHERE item = ? "
                                         "AND channel = ?", (time.time(), item.id, channel.id))
                log.warning("outofband_sent", item=item.id, kind=item.kind, key=item.key, channel=channel.kind)
            else:
                await self.store.execute("DELETE FROM outofband_sent WHERE item = ? AND channel = ?",
                                         (item.id, channel.id))
                missing += 1
        if missing:
            await self.store.execute("UPDATE outofband_items SET due = ? WHERE id = ?",
                                     (time.time() + RETRY, item.id))
            return False
        await self.settle(item, "sent")
        return True

    async def _had(self, item: Item, channel: Channel) -> bool:
        row = await self.store.fetchone("SELECT state FROM outofband_sent WHERE item = ? AND channel = ?",
                                        (item.id, channel.id))
        if row and row["state"] == "sending":
            log.error("outofband_maybe_lost", item=item.id, channel=channel.kind,
                      hint="the bot stopped while sending; not sent again")
        return row is not None

    async def sent_channels(self, item: Item) -> list[str]:
        rows = await self.store.fetchall("SELECT channel FROM outofband_sent WHERE item = ? AND state = 'sent'",
                                         (item.id,))
        ids = {r["channel"] for r in rows}
        return [c.kind for c in self.channels if c.id in ids]

    async def to_note(self) -> list[Item]:
        rows = await self.store.fetchall("SELECT * FROM outofband_items WHERE state = 'sent' ORDER BY id")
        return [_item(r) for r in rows]

    async def noted(self, items: list[Item]) -> None:
        for item in items:
            await self.settle(item, "noted")
