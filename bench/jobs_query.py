"""`!jobs` with a long history: the handler's time (the job runner's queries plus rendering) over a jobs
table of 1,000,000 rows, plus the duplicate check a locked job makes before it starts. In process, on
a real store file; no Synapse needed. Prints its figure; asserts nothing.

    .venv/bin/python bench/jobs_query.py [--rows 1000000]
"""
from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import Figure, median  # noqa: E402
from spbot.commands.jobs import jobs as jobs_command  # noqa: E402
from spbot import jobs  # noqa: E402
from spbot.store import Store  # noqa: E402

GOAL_MS = 10.0


def fill(path: Path, rows: int) -> None:
    """`rows` finished jobs (a few commands, mostly scheduled ones), then one running backup."""
    db = sqlite3.connect(path)
    db.executescript(jobs.SCHEMA)
    db.execute("ALTER TABLE jobs ADD COLUMN expected_stop TEXT")
    now = time.time() - rows * 60
    commands = ["backup now", "disk", "heartbeat", "services restart", "backup check"]
    db.executemany(
        "INSERT INTO jobs(title, command, args, requester, room_id, locks, state, created, started, ended, summary)"
        " VALUES(?, ?, '{}', '@admin:localhost', '!room:localhost', '[]', ?, ?, ?, ?, ?)",
        ((f"!{commands[i % 5]}", commands[i % 5], "done" if i % 17 else "failed", now + i * 60,
          now + i * 60, now + i * 60 + 5, "ok") for i in range(rows)))
    db.execute("INSERT INTO jobs(title, command, args, requester, locks, state, created, started)"
               " VALUES('!backup now', 'backup now', '{}', '@admin:localhost', '[\"backup\"]', 'running', ?, ?)",
               (time.time(), time.time()))
    db.commit()
    db.close()


async def timed(work, rounds: int = 30) -> float:
    await work()                            # the first call warms SQLite's page cache
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await work()
        times.append((time.perf_counter() - started) * 1000)
    return median(times)


async def measure(rows: int = 1_000_000) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="spbot-bench-jobs-") as tmp:
        path = Path(tmp) / "spbot.db"
        fill(path, rows)
        store = await Store(path).open()
        try:
            runner = jobs.JobRunner(store, None, SimpleNamespace(state_dir=Path(tmp)), None)
            if hasattr(runner, "prepare_store"):      # the indexes and bounds a running bot keeps
                await runner.prepare_store()
            ctx = SimpleNamespace(jobs=runner)
            handler = await timed(lambda: jobs_command(ctx, 10))
            duplicate = await timed(lambda: _duplicate(runner))
        finally:
            await store.close()
    print(f"jobs: {rows:,} rows; !jobs handler median {handler:.2f} ms; duplicate check median {duplicate:.2f} ms")
    slowest = max(handler, duplicate)
    return [Figure(f"`!jobs` with {rows:,} job rows", f"{handler:.1f} ms handler, {duplicate:.1f} ms duplicate check",
                   f"≤ {GOAL_MS:.0f} ms", slowest <= GOAL_MS)]


async def _duplicate(runner: jobs.JobRunner) -> None:
    try:
        await runner._refuse_duplicate("disk", frozenset({"disk"}))
    except jobs.JobRefused:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    for figure in asyncio.run(measure(parser.parse_args().rows)):
        print(figure.line())
