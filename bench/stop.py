"""How long an idle bot takes to stop: SIGTERM to exit, spbot against the echo bot, after each was
answering (`!ping`) and then left idle for a moment. Prints its figure; asserts nothing.

    .venv/bin/python bench/stop.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import Figure, Stack, median, run  # noqa: E402

GOAL_MS = 100.0


async def stop_times(stack: Stack, bot: str, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        await stack.ping(bot, timeout=90)
        await asyncio.sleep(2)
        times.append(stack.stop_bot(bot))
        stack.start_bot(bot)
    await stack.ping(bot, timeout=90)
    return times


async def measure(stack: Stack, rounds: int = 3) -> Figure:
    spbot = median(await stop_times(stack, "spbot", rounds))
    echo = median(await stop_times(stack, "echo", rounds))
    print(f"stop when idle: spbot median {spbot:.0f} ms, echo bot {echo:.0f} ms ({rounds} rounds)")
    return Figure("stop", f"{spbot:.0f} ms (echo {echo:.0f} ms)", f"≤ {GOAL_MS:.0f} ms when idle", spbot <= GOAL_MS)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    run(measure, parser.parse_args().rounds)
