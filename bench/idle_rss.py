"""Idle RSS of spbot against the echo bot on the same Synapse (the process and its children), plus what
each import costs in RSS (each measured in a fresh interpreter, on top of Python itself), and which heavy
packages a bot with only [backup] configured loaded. Prints its figures; asserts nothing.

    .venv/bin/python bench/idle_rss.py
"""
from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import ROOT, Figure, Stack, budget_line, on_nio, rss_mib, run  # noqa: E402

GOAL = 1.3
IMPORTS = ["nio", "aiosqlite", "aiohttp", "httpx", "pydantic", "apscheduler", "psutil", "nacl.signing",
           "hcloud", "b2sdk.v2", "pydo", "apprise", "spbot.config", "spbot.bot"]
FEATURES = ["backup", "disk", "services", "cleanup", "ssh", "users", "upgrade.feature", "server", "dns",
            "outofband", "heartbeat", "fleet"]
HEAVY = ["hcloud", "b2sdk", "pydo", "apprise", "pydantic_settings", "boto3", "cryptography.x509"]
_PROBE = """
import os, sys
os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096
{base}
before = rss()
import {module}
print((rss() - before) / 2**20)
"""


def import_rss(module: str, base: str = "") -> float | None:
    result = subprocess.run([sys.executable, "-c", _PROBE.format(module=module, base=base)], cwd=ROOT,
                            capture_output=True, text=True)
    return float(result.stdout) if result.returncode == 0 else None


def import_table() -> list[str]:
    """What each import adds alone (on top of Python), then what each feature adds to a bot whose core
    (spbot.bot, with nio and pydantic) is loaded: every feature is imported whether configured or not,
    and none of them loads a provider SDK until it is used."""
    lines = ["| import | RSS added |", "|---|---|"]
    for module in IMPORTS:
        cost = import_rss(module)
        lines.append(f"| {module} | {'not installed' if cost is None else f'{cost:.1f} MiB'} |")
    for name in FEATURES:
        cost = import_rss(f"spbot.features.{name}", base="import spbot.cli, spbot.bot")
        lines.append(f"| feature {name.split('.')[0]} (on the core) | "
                     f"{'failed' if cost is None else f'{cost:.1f} MiB'} |")
    return lines


async def measure(stack: Stack) -> Figure:
    await asyncio.sleep(5)
    spbot, echo = rss_mib(stack.pid("spbot")), rss_mib(stack.pid("echo"))
    async with stack.core_in_place():
        await asyncio.sleep(5)
        core = rss_mib(stack.pid("spbot"))
    print(f"idle RSS: spbot {spbot:.1f} MiB, echo bot {echo:.1f} MiB, spbot's core alone (bench/core_bot.py: "
          f"no feature, the core's commands) {core:.1f} MiB ({core / echo:.2f}×)")
    print(budget_line(GOAL, echo, [(name, mib) for name, _, mib in on_nio()], "MiB"))
    print("\n".join(import_table()))
    modules = loaded_modules(stack)
    print(f"heavy packages loaded by the idle bot ([backup] on a local repository configured): "
          f"{', '.join(modules) or 'none'}")
    ratio = spbot / echo
    return Figure("idle RSS vs the echo bot", f"{ratio:.2f}× ({spbot:.0f} vs {echo:.0f} MiB; "
                  f"the core alone {core / echo:.2f}×)",
                  f"≤ {GOAL}×", ratio <= GOAL)


def loaded_modules(stack: Stack) -> list[str]:
    """Heavy packages a bot built from the same config imports (in a fresh interpreter: the running
    bot's /proc maps show only C extensions, not pure-Python packages)."""
    probe = ("import sys; from spbot.config import load_config; from spbot.bot import Bot; "
             "from spbot.features import all_features; "
             f"Bot(load_config({str(stack.config)!r}), features=all_features()); "
             f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.split() if result.returncode == 0 else [f"(probe failed: {result.stderr.strip()[-200:]})"]


if __name__ == "__main__":
    run(measure)
