"""The issue-23 table in one run: every light-footprint figure measured on one fresh Synapse, spbot beside
the minimal nio echo bot (bench/echo_bot.py), each figure by its own script in bench/. Prints the
figures' details as it goes, then the table (figure, now, goal, met).

    .venv/bin/python bench/light.py [--size-mb 918] [--snapshots 30] [--rows 1000000] [--dir /var/tmp]
                                    [--only wakeups,idle_rss,startup,stop,backup_list,loaded_latency,jobs_query]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backup_list  # noqa: E402
import idle_rss  # noqa: E402
import jobs_query  # noqa: E402
import loaded_latency  # noqa: E402
import startup  # noqa: E402
import stop  # noqa: E402
import wakeups  # noqa: E402
from stack import Stack  # noqa: E402


async def main(args: argparse.Namespace) -> None:
    figures = []
    only = set(args.only.split(",")) if args.only else None

    def wanted(name: str) -> bool:
        return only is None or name in only

    stack = await Stack.up(args.dir)
    try:
        if wanted("wakeups"):
            figures.append(await wakeups.measure(stack, args.seconds))
        if wanted("idle_rss"):
            figures.append(await idle_rss.measure(stack))
        if wanted("startup"):
            figures.append(await startup.measure(stack, args.rounds))
        if wanted("stop"):
            figures.append(await stop.measure(stack, args.rounds))
        if wanted("backup_list"):
            figures.append(await backup_list.measure(stack, args.snapshots))
        if wanted("loaded_latency"):
            figures.append(await loaded_latency.measure(stack, args.size_mb, args.samples))
    finally:
        await stack.down()
    if wanted("jobs_query"):
        figures.extend(await jobs_query.measure(args.rows))
    print(f"\n{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}\n")
    print("| figure | now | goal | met |\n|---|---|---|---|")
    for figure in figures:
        print(figure.line())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=918)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--snapshots", type=int, default=30)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated figures (the scripts' names); all when empty")
    parser.add_argument("--dir", type=Path, default=None, help="where the data and repositories go")
    asyncio.run(main(parser.parse_args()))
