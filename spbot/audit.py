"""The audit log: every command that reached dispatch, who sent it from which device, and how it ended."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from .store import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    sender TEXT NOT NULL,
    device_id TEXT,
    room_id TEXT,
    event_id TEXT,
    command TEXT NOT NULL,
    args TEXT NOT NULL,
    result TEXT NOT NULL,
    detail TEXT,
    duration_ms INTEGER,
    approvals TEXT,
    host TEXT
);
"""
KEPT_ROWS = 100_000             # the audit keeps its newest entries; older ones are deleted
PRUNE_EVERY = 1_000             # entries recorded between two prunings


@dataclass
class AuditEntry:
    sender: str
    device_id: str | None
    room_id: str | None
    event_id: str | None
    command: str
    args: dict
    result: str            # ok | failed | refused | usage | unknown | denied | expired | cancelled …
    detail: str = ""
    duration_ms: int | None = None
    approvals: list[str] | None = None


class AuditLog:
    def __init__(self, store: Store, host: str | None = None):
        """`host`: this server's name in a fleet, recorded on every row."""
        self.store = store
        self.host = host

    async def start(self) -> None:
        await self.store.ensure_schema(SCHEMA)
        columns = {row["name"] for row in await self.store.fetchall("PRAGMA table_info(audit)")}
        if "host" not in columns:               # a log from before fleets
            await self.store.execute("ALTER TABLE audit ADD COLUMN host TEXT")
        await self._prune()

    async def _prune(self) -> None:
        await self.store.execute("DELETE FROM audit WHERE id <= (SELECT MAX(id) FROM audit) - ?", (KEPT_ROWS,))

    async def record(self, entry: AuditEntry) -> int:
        entry_id = await self.store.insert(
            "INSERT INTO audit(ts, sender, device_id, room_id, event_id, command, args, result, detail,"
            " duration_ms, approvals, host) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (time.time(), entry.sender, entry.device_id, entry.room_id, entry.event_id, entry.command,
             json.dumps(entry.args, ensure_ascii=False), entry.result, entry.detail[:500],
             entry.duration_ms, json.dumps(entry.approvals or []), self.host))
        if entry_id % PRUNE_EVERY == 0:
            await self._prune()
        return entry_id

    async def recent(self, limit: int) -> list[dict]:
        rows = await self.store.fetchall("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(r) for r in rows]
