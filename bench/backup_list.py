"""`!backup list` against bare `restic snapshots --json` on the same repository, with N snapshots made
outside the bot (so none of their sizes is in the bot's run log): the first call and a later one, each
from the E2EE command to the reply. Prints its figure; asserts nothing.

    .venv/bin/python bench/backup_list.py [--snapshots 30]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import Figure, Stack, median, run  # noqa: E402

GOAL = 1.3


def make_snapshots(stack: Stack, count: int) -> None:
    small = stack.work / "small"
    small.mkdir(exist_ok=True)
    for i in range(count):
        (small / f"note-{i}.txt").write_text(f"note {i}\n" * 100)
        subprocess.run(["restic", "backup", "--tag", "service:data", "--tag", "reason:manual", "--host", "bench",
                        str(small)], env=stack.restic_env(), check=True, capture_output=True)


def bare_list(stack: Stack, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(["restic", "snapshots", "--json", "--tag", "service:data"], env=stack.restic_env(),
                       check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return median(times)


async def measure(stack: Stack, count: int = 30) -> Figure:
    make_snapshots(stack, count)
    bare = bare_list(stack)
    first = await stack.ping("spbot", "!backup list", timeout=600) / 1000
    later = median([await stack.ping("spbot", "!backup list", timeout=600) / 1000 for _ in range(3)])
    print(f"!backup list with {count} snapshots: first {first:.2f} s, later {later:.2f} s; "
          f"bare restic snapshots --json {bare:.2f} s")
    worst = max(first, later) / bare
    return Figure(f"`!backup list` with {count} snapshots vs bare `restic snapshots --json` ({bare:.2f} s)",
                  f"first {first:.2f} s ({first / bare:.1f}×), later {later:.2f} s ({later / bare:.1f}×)",
                  f"≤ {GOAL}× from the first call", worst <= GOAL)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshots", type=int, default=30)
    run(measure, parser.parse_args().snapshots)
