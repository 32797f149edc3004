"""The homeserver's media store on disk (Synapse's media_store_path): the family's own uploads
(local_content, local_thumbnails) and the cache of other servers' media (remote_content, remote_thumbnail),
measured like du with a time budget; samples in SQLite give the growth per day."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from spbot.render import human_bytes
from spbot.system.disks import tree_size
from spbot.system.forecast import DAY

LOCAL = ("local_content", "local_thumbnails")
REMOTE = ("remote_content", "remote_thumbnail")
TIME_BUDGET = 10.0          # seconds for one part: a huge store gives lower bounds rather than a slow reply
GROWTH_DAYS = 7.0
KEEP_DAYS = 90.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS media_store_samples (
    ts REAL NOT NULL,
    path TEXT NOT NULL,
    local INTEGER NOT NULL,
    remote INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS media_store_samples_path_ts ON media_store_samples(path, ts);
"""


@dataclass(frozen=True)
class MediaStoreSize:
    path: Path
    local: int = 0          # the family's uploads and their thumbnails, bytes allocated
    remote: int = 0         # the cache of other servers' media
    partial: bool = False   # time ran out: lower bounds
    error: str = ""         # the store could not be read at all

    @property
    def readable(self) -> bool:
        return not self.error


async def measure(path: Path, budget: float = TIME_BUDGET) -> MediaStoreSize:
    """The sizes of both halves of the store; a missing part counts as empty."""
    if not await asyncio.to_thread(path.is_dir):
        return MediaStoreSize(path, error=f"{path} is not there (or not readable by the bot)")
    sizes, partial = [], False
    for parts in (LOCAL, REMOTE):
        total = 0
        for part in parts:
            if not await asyncio.to_thread((path / part).is_dir):
                continue
            found = await tree_size(str(path / part), time_budget=budget)
            total += found.total_bytes
            partial = partial or found.partial
        sizes.append(total)
    return MediaStoreSize(path, sizes[0], sizes[1], partial)


@dataclass(frozen=True)
class Growth:
    local_per_day: float
    remote_per_day: float
    days: float             # how long the samples span


class MediaSamples:
    """`media_store_samples`: (ts, path, local, remote), kept KEEP_DAYS."""

    def __init__(self, store):
        self.store = store

    async def start(self) -> None:
        await self.store.ensure_schema(SCHEMA)

    async def record(self, size: MediaStoreSize, now: float) -> None:
        if not size.readable or size.partial:
            return
        await self.store.insert("INSERT INTO media_store_samples(ts, path, local, remote) VALUES(?,?,?,?)",
                                (now, str(size.path), size.local, size.remote))
        await self.store.execute("DELETE FROM media_store_samples WHERE ts < ?", (now - KEEP_DAYS * DAY,))

    async def growth(self, size: MediaStoreSize, now: float) -> Growth | None:
        """Per day, from the oldest sample of the last week to `size`; None before an hour of samples."""
        row = await self.store.fetchone(
            "SELECT ts, local, remote FROM media_store_samples WHERE path = ? AND ts >= ? ORDER BY ts LIMIT 1",
            (str(size.path), now - GROWTH_DAYS * DAY))
        if row is None or now - row["ts"] < 3600 or not size.readable:
            return None
        days = (now - row["ts"]) / DAY
        return Growth((size.local - row["local"]) / days, (size.remote - row["remote"]) / days, days)


def per_day(value: float) -> str:
    sign = "+" if value >= 0 else "−"
    return f"{sign}{human_bytes(abs(value))}/day"


def size_lines(size: MediaStoreSize, growth: Growth | None) -> list[str]:
    """Two short lines: the uploads and the cache, with their growth once known."""
    if not size.readable:
        return [f"media store: cannot measure ({size.error})"]
    about = "at least " if size.partial else ""
    local = f"{about}{human_bytes(size.local)}" + (f" ({per_day(growth.local_per_day)})" if growth else "")
    remote = f"{about}{human_bytes(size.remote)}" + (f" ({per_day(growth.remote_per_day)})" if growth else "")
    return [f"media uploaded here: {local}", f"media cached from other servers: {remote}"]
