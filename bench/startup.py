"""Launch to first answer with a warm store: the bot is stopped, an admin sends `!ping`, the bot is
started; the time from launch to its reply, spbot against the echo bot. Also the import cost the launch
pays (`python -X importtime`), its largest parts. Prints its figures; asserts nothing.

    .venv/bin/python bench/startup.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import ROOT, Figure, Stack, budget_line, median, on_nio, run  # noqa: E402

GOAL = 1.3
# what `spbot run` imports before it connects: the bot and every feature class, the collector paused as
# spbot/launch.py pauses it
LAUNCH_IMPORTS = "import gc; gc.disable(); import spbot.cli, spbot.bot; from spbot.features import all_features; all_features()"


async def launch_time(stack: Stack, bot: str) -> float:
    room, user = stack.room(bot)
    await stack.ping(bot, timeout=90)
    await asyncio.sleep(1)
    stack.stop_bot(bot)
    event_id = await stack.client.send(room, "!ping")
    started = time.perf_counter()
    stack.start_bot(bot)
    await stack.client.wait_for(lambda e: e.sender == user and e.reply_to == event_id, timeout=90)
    return time.perf_counter() - started


async def launch_times(stack: Stack, bots: tuple[str, ...], rounds: int) -> list[list[float]]:
    """Each bot's launch times, the bots taking turns in each round: a machine busier for a while slows
    both alike, instead of whichever ran then."""
    times: list[list[float]] = [[] for _ in bots]
    for _ in range(rounds):
        for bot, kept in zip(bots, times):
            kept.append(await launch_time(stack, bot))
    return times


def import_costs(top: int = 12) -> tuple[float, list[tuple[float, str]]]:
    """Total import time of the launch (s) and the largest top-level packages by cumulative time."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", LAUNCH_IMPORTS], cwd=ROOT,
                         capture_output=True, text=True, check=True).stderr
    packages: dict[str, float] = {}
    total = 0.0
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if not name.startswith("   "):                 # a top-level import of the launch
            packages[name.strip()] = int(cumulative) / 1e6
            total += int(cumulative) / 1e6
    return total, sorted(((t, n) for n, t in packages.items()), reverse=True)[:top]


async def measure(stack: Stack, rounds: int = 5) -> Figure:
    spbot, echo = map(median, await launch_times(stack, ("spbot", "echo"), rounds))
    async with stack.core_in_place():
        core = median((await launch_times(stack, ("spbot",), rounds))[0])
    imports, largest = import_costs()
    print(f"launch to first answer, warm store: spbot {spbot:.2f} s, echo bot {echo:.2f} s, spbot's core "
          f"alone (bench/core_bot.py) {core:.2f} s ({core / echo:.2f}×); imports {imports:.2f} s, largest: "
          + ", ".join(f"{n} {t * 1000:.0f} ms" for t, n in largest))
    print(budget_line(GOAL, echo * 1000, [(name, seconds * 1000) for name, seconds, _ in on_nio()], "ms"))
    ratio = spbot / echo
    return Figure("launch to first answer, warm store", f"{ratio:.2f}× ({spbot:.2f} vs {echo:.2f} s; "
                  f"{imports:.2f} s of imports; the core alone {core / echo:.2f}×)", f"≤ {GOAL}×", ratio <= GOAL)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    run(measure, parser.parse_args().rounds)
