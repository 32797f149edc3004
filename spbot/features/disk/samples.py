"""The usage history behind the disk trends: `disk_samples` rows in SQLite, every sample for a day,
then hourly means for a month, then daily means until [disk] history_days (bounded, never gappy)."""
from __future__ import annotations

import math
from typing import Iterable

from spbot.system.disks import MountUsage
from spbot.system.forecast import DAY, HOUR, Sample, downsample

SCHEMA = """
CREATE TABLE IF NOT EXISTS disk_samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mount TEXT NOT NULL,
    ts REAL NOT NULL,
    used INTEGER NOT NULL,
    total INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS disk_samples_mount_ts ON disk_samples(mount, ts);
"""
RAW_DAYS = 1.0          # every sample is kept this long, then hourly means ...
HOURLY_DAYS = 30.0      # ... up to this age, then daily means until history_days
COMPACT_EVERY = HOUR


class SampleStore:
    """`disk_samples`: (mount, ts, used, total) rows; raw, then hourly, then daily means."""

    def __init__(self, store):
        self.store = store

    async def start(self) -> None:
        await self.store.ensure_schema(SCHEMA)

    async def record(self, usages: Iterable[MountUsage], now: float) -> int:
        count = 0
        for usage in usages:
            if usage.available and usage.total > 0:
                await self.store.insert("INSERT INTO disk_samples(mount, ts, used, total) VALUES(?,?,?,?)",
                                        (usage.mountpoint, now, usage.used, usage.total))
                count += 1
        return count

    async def history(self, mount: str, since: float) -> list[Sample]:
        rows = await self.store.fetchall(
            "SELECT ts, used, total FROM disk_samples WHERE mount = ? AND ts >= ? ORDER BY ts",
            (mount, since))
        return [Sample(r["ts"], r["used"], r["total"]) for r in rows]

    async def compact(self, now: float, history_days: float) -> int:
        """Drop samples older than `history_days`, replace old ones by hourly/daily means.

        Works on whole UTC days only, so every mean covers a complete bucket, and never deletes a
        sample before its mean is written (a crash in between only leaves an extra sample).
        Returns the number of rows removed."""
        removed = await self.store.execute("DELETE FROM disk_samples WHERE ts < ?",
                                           (now - history_days * DAY,))
        day_start = math.floor(now / DAY) * DAY
        cutoff = day_start - RAW_DAYS * DAY
        mounts = [r["mount"] for r in await self.store.fetchall(
            "SELECT DISTINCT mount FROM disk_samples WHERE ts < ?", (cutoff,))]
        for mount in mounts:
            removed += await self._compact_mount(mount, cutoff, day_start)
        return removed

    async def _compact_mount(self, mount: str, cutoff: float, day_start: float) -> int:
        rows = await self.store.fetchall(
            "SELECT id, ts, used, total FROM disk_samples WHERE mount = ? AND ts < ? ORDER BY ts",
            (mount, cutoff))
        samples = [(r["id"], Sample(r["ts"], r["used"], r["total"])) for r in rows]
        kept = set(downsample([s for _, s in samples], day_start, raw_days=RAW_DAYS,
                              hourly_days=HOURLY_DAYS))
        present: set[Sample] = set()
        stale: list[int] = []
        for row_id, sample in samples:
            if sample in kept and sample not in present:
                present.add(sample)
            else:
                stale.append(row_id)          # averaged away, or a duplicate row
        if not stale:
            return 0
        for sample in sorted(kept - present):
            await self.store.insert("INSERT INTO disk_samples(mount, ts, used, total) VALUES(?,?,?,?)",
                                    (mount, sample.timestamp, sample.used, sample.total))
        for start in range(0, len(stale), 500):
            chunk = stale[start:start + 500]
            await self.store.execute(f"DELETE FROM disk_samples WHERE id IN ({','.join('?' * len(chunk))})",
                                     chunk)
        return len(stale)
