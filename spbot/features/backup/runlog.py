"""The run log: one row per finished backup run in the bot's database, snapshot sizes, the marker of a
restic run that did not end cleanly, what a stop of the bot left undone (recovery.py finishes it), and
when the watchdog first knew of each service."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from spbot.system.restic import BackupSummary

from .model import Outcome

if TYPE_CHECKING:
    from spbot.store import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS backup_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    reason TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL NOT NULL,
    ok INTEGER NOT NULL,
    snapshot_id TEXT,
    files_new INTEGER NOT NULL DEFAULT 0,
    files_changed INTEGER NOT NULL DEFAULT 0,
    data_added INTEGER NOT NULL DEFAULT 0,
    total_files INTEGER NOT NULL DEFAULT 0,
    total_bytes INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS backup_runs_by_service ON backup_runs(service, ok, ended);
CREATE TABLE IF NOT EXISTS backup_sizes (snapshot_id TEXT PRIMARY KEY, size INTEGER NOT NULL);
"""


OWED = "backup:owed:"


class RunLog:
    """Finished runs only: a run is written once, whole, when it ends (never half a run)."""

    def __init__(self, store: "Store"):
        self.store = store
        self._ready = False

    async def start(self) -> None:
        if not self._ready:
            await self.store.ensure_schema(SCHEMA)
            self._ready = True

    async def record(self, o: Outcome) -> None:
        await self.start()
        s = o.summary or BackupSummary()
        await self.store.insert(
            "INSERT INTO backup_runs(service, reason, started, ended, ok, snapshot_id, files_new, "
            "files_changed, data_added, total_files, total_bytes, error) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
            (o.service, o.reason, o.started, o.ended, int(o.ok), s.snapshot_id if o.ok else None,
             s.files_new, s.files_changed, s.data_added, s.total_files_processed, s.total_bytes_processed,
             o.error[:2000] or None))

    async def last_success(self, service: str):
        await self.start()
        return await self.store.fetchone(
            "SELECT * FROM backup_runs WHERE service = ? AND ok = 1 ORDER BY ended DESC LIMIT 1", (service,))

    async def since(self, when: float) -> list:
        await self.start()
        return await self.store.fetchall(
            "SELECT * FROM backup_runs WHERE ended >= ? ORDER BY ended", (when,))

    async def sizes(self) -> dict[str, int]:
        await self.start()
        known = {r["snapshot_id"][:8]: r["total_bytes"] for r in await self.store.fetchall(
            "SELECT snapshot_id, total_bytes FROM backup_runs WHERE ok = 1 AND snapshot_id IS NOT NULL")}
        for row in await self.store.fetchall("SELECT snapshot_id, size FROM backup_sizes"):
            known[row["snapshot_id"]] = row["size"]
        return known

    async def remember_size(self, short_id: str, size: int) -> None:
        await self.store.execute("INSERT OR REPLACE INTO backup_sizes(snapshot_id, size) VALUES(?, ?)",
                                 (short_id, size))

    # restic runs as its own process group: a killed bot or a killed restic leaves its lock behind.
    # The marker says a run did not end cleanly, so the next run removes stale locks first.
    async def mark_running(self) -> None:
        await self.store.put("backup:restic_running", time.time())

    async def mark_finished(self) -> None:
        await self.store.execute("DELETE FROM kv WHERE key = ?", ("backup:restic_running",))

    async def interrupted(self) -> bool:
        return await self.store.get("backup:restic_running") is not None

    # Work that must be finished even if the bot is killed halfway (a service's post commands once its pre
    # commands ran, the units a restore stopped): written before the first step, removed after the last.
    async def owe(self, key: str, entry: dict[str, Any]) -> None:
        await self.store.put(OWED + key, entry)

    async def paid(self, key: str) -> None:
        await self.store.execute("DELETE FROM kv WHERE key = ?", (OWED + key,))

    async def owed(self) -> dict[str, dict[str, Any]]:
        rows = await self.store.fetchall("SELECT key FROM kv WHERE key LIKE ? ORDER BY key", (OWED + "%",))
        return {r["key"].removeprefix(OWED): await self.store.get(r["key"]) for r in rows}

    async def first_seen(self, service: str, now: float) -> float:
        """When the watchdog first knew of this service (its grace period starts there)."""
        seen = await self.store.get("backup:first_seen", {})
        if service not in seen:
            seen[service] = now
            await self.store.put("backup:first_seen", seen)
        return seen[service]
