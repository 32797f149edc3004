"""The floor of spbot's footprint: its runtime with no feature and only the core's own commands (!ping,
!help, !status, !jobs, !approvals, !audit, !trust), run exactly as `spbot run` runs the whole bot. What
this costs beyond the echo bot is what any spbot pays before it backs up, watches or upgrades anything;
bench/idle_rss.py and bench/startup.py measure it beside both bots. Not a product entry point.

    .venv/bin/python bench/core_bot.py --config bot.toml
"""
from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")     # as spbot/cli.py does

CORE_COMMANDS = ["approvals", "audit", "help", "jobs", "ping", "status", "trust"]


def main() -> int:
    gc.disable()                               # as spbot/launch.py does
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True, type=Path)
    config_path = parser.parse_args().config
    from spbot.statedir import make_private, use_private_umask
    use_private_umask()
    from spbot import alerts_settings  # noqa: F401  (the core's [alerts] section)
    for name in CORE_COMMANDS:
        importlib.import_module(f"spbot.commands.{name}")
    from spbot.config import load_config
    from spbot.logs import setup_logging
    config = load_config(config_path)          # the features' sections are left unread: none runs
    setup_logging(config.log_level)
    make_private(config.state_dir)
    import asyncio

    from spbot.bot import Bot
    from spbot.cli import _exit_now
    from spbot.launch import loaded
    bot = Bot(config, features=[])
    loaded()
    asyncio.run(bot.run())
    _exit_now(0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
