"""Idle wake-ups per second of spbot and of the echo bot on the same Synapse: every time a thread of the
process (or a child) was scheduled, counted from /proc over a quiet window after both settled.
Prints its figure; asserts nothing.

    .venv/bin/python bench/wakeups.py [--seconds 30]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import Figure, Stack, context_switches, run  # noqa: E402

GOAL = 1.0


async def wakeups_per_second(stack: Stack, seconds: float) -> dict[str, float]:
    await asyncio.sleep(5)                          # replies, key uploads and edits settle
    before = {bot: context_switches(stack.pid(bot)) for bot in ("spbot", "echo")}
    await asyncio.sleep(seconds)
    return {bot: (context_switches(stack.pid(bot)) - before[bot]) / seconds for bot in before}


async def measure(stack: Stack, seconds: float = 30) -> Figure:
    rates = await wakeups_per_second(stack, seconds)
    print(f"wake-ups over {seconds:.0f} s idle: spbot {rates['spbot']:.2f}/s, echo bot {rates['echo']:.2f}/s")
    return Figure("idle wake-ups", f"{rates['spbot']:.2f} per second (echo bot {rates['echo']:.2f})",
                  f"≤ {GOAL:.0f} per second", rates["spbot"] <= GOAL)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    run(measure, parser.parse_args().seconds)
