"""`!ping` and `!disk` round trips while the bot backs up a large tree, against the same when idle, and the
latency of a CPU-bound stand-in for the family's services (fixed work units, measured in their own
process) over the same windows. Prints its figure; asserts nothing.

    .venv/bin/python bench/loaded_latency.py [--size-mb 918] [--samples 40]
"""
from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backup import make_data, warm_page_cache  # noqa: E402
from stack import Figure, Stack, median, percentile, run  # noqa: E402

GOAL = 1.2
# The family's service: a unit of CPU work every 50 ms, printing how long each unit took (ms).
STAND_IN = """
import hashlib, sys, time
while True:
    started = time.perf_counter()
    digest = b"x"
    for _ in range(6000):
        digest = hashlib.sha256(digest).digest()
    print((time.perf_counter() - started) * 1000, flush=True)
    time.sleep(0.05)
"""


class StandIn:
    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-c", STAND_IN], stdout=subprocess.PIPE, text=True)
        self.units: list[tuple[float, float]] = []
        self.reader = asyncio.get_running_loop().run_in_executor(None, self._read)

    def _read(self) -> None:
        for line in self.process.stdout:
            self.units.append((time.monotonic(), float(line)))

    def between(self, start: float, end: float) -> list[float]:
        return [took for when, took in self.units if start <= when <= end]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


async def samples(stack: Stack, count: int, until=None) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"!ping": [], "!disk": []}
    for _ in range(count):
        for command in found:
            if until is not None and until():
                return found
            found[command].append(await stack.ping("spbot", command, timeout=120))
            await asyncio.sleep(0.2)
    return found


async def measure(stack: Stack, size_mb: int = 918, count: int = 40) -> Figure:
    make_data(stack.data / "big", size_mb)
    warm_page_cache(stack.data)
    stand_in = StandIn()
    try:
        await asyncio.sleep(3)
        start = time.monotonic()
        idle = await samples(stack, count)
        idle_units = stand_in.between(start, time.monotonic())
        command_id = await stack.client.send(stack.spbot_room, "!backup now data")

        def backup_done() -> bool:
            return any(e.sender == stack.spbot_user and e.reply_to == command_id and
                       ("✅ data: snapshot" in e.body or "⚠️" in e.body) for e in stack.client.events)
        await asyncio.sleep(2)                   # restic is reading by now
        start = time.monotonic()
        loaded = await samples(stack, count, backup_done)
        loaded_units = stand_in.between(start, time.monotonic())
        finished_during = backup_done()
        await stack.client.wait_for(lambda e: e.sender == stack.spbot_user and e.reply_to == command_id
                                    and ("✅ data: snapshot" in e.body or "⚠️" in e.body), timeout=3600)
    finally:
        stand_in.stop()
    parts, worst = [], 0.0
    for command in ("!ping", "!disk"):
        ratio = median(loaded[command]) / median(idle[command])
        p95 = percentile(loaded[command], 0.95) / percentile(idle[command], 0.95)
        worst = max(worst, ratio)
        parts.append(f"{command} {ratio:.2f}× (p95 {p95:.2f}×, {len(loaded[command])} samples)")
        print(f"{command}: idle median {median(idle[command]):.0f} ms p95 {percentile(idle[command], 0.95):.0f} ms; "
              f"during the backup median {median(loaded[command]):.0f} ms p95 {percentile(loaded[command], 0.95):.0f} ms")
    service = median(loaded_units) / median(idle_units)
    worst = max(worst, service)
    print(f"stand-in service unit: idle median {median(idle_units):.1f} ms, during the backup "
          f"{median(loaded_units):.1f} ms ({service:.2f}×)" + ("; the backup ended before the samples did"
                                                               if finished_during else ""))
    return Figure(f"`!ping` / `!disk` round trip while a {size_mb} MiB backup runs, vs idle",
                  " / ".join(parts) + f"; stand-in service {service:.2f}×", f"≤ {GOAL}×", worst <= GOAL)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=918)
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    run(measure, args.size_mb, args.samples)
