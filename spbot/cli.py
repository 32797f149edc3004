"""The `spbot` command: run the bot, check its set-up, talk to it, drive the dev stack."""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from .config import ConfigError, load_config
from .logs import get_logger, setup_logging

log = get_logger("spbot")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spbot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the bot")
    run.add_argument("--config", "-c", required=True, type=Path)
    doctor = sub.add_parser("doctor", help="check configuration, homeserver, login, rooms, encryption")
    doctor.add_argument("--config", "-c", required=True, type=Path)
    console = sub.add_parser("console", help="talk to the bot from this terminal (dev stack)")
    console.add_argument("--dev-json", type=Path, default=None)
    console.add_argument("--user", default=None, help="admin to log in as (default: the first)")
    trust = sub.add_parser("trust", help="accept an admin's new identity, or reset the bot's own")
    trust.add_argument("action", choices=["accept", "reset"])
    trust.add_argument("user", nargs="?", help="the admin whose new identity to accept")
    trust.add_argument("--config", "-c", required=True, type=Path)
    config = sub.add_parser("config", help="print the complete example configuration, or check a file")
    config.add_argument("action", choices=["example", "check"])
    config.add_argument("file", nargs="?", type=Path, help="the file to check (config check)")
    dev = sub.add_parser("dev", help="the dev stack: up or down")
    dev.add_argument("action", choices=["up", "down"])
    args = parser.parse_args(argv)
    return {"run": _run, "doctor": _doctor, "console": _console, "dev": _dev,
            "trust": _trust, "config": _config}[args.command](args)


def _load(path: Path, with_commands: bool = False):
    """The validated config (with every command module's own section when asked), or None after
    printing one line per problem."""
    try:
        if with_commands:
            from commands import load_all
            load_all()                 # the built-in sections first: a typo in one is told with the rest
        config = load_config(path)
        if with_commands:
            load_all(config.plugins)
            config.check_sections()
        return config
    except ImportError as exc:
        _print_problems([f"plugins: cannot import {exc.name}"], path)
    except ConfigError as exc:
        _print_problems(exc.problems, path)
    return None


def _print_problems(problems: list[str], path: Path) -> None:
    for problem in problems:
        print(f"spbot: config error: {problem}", file=sys.stderr)
    print(f"spbot: fix {path} and start again", file=sys.stderr)


def _run(args) -> int:
    from .statedir import make_private, use_private_umask
    use_private_umask()          # before anything is written: the state directory holds secrets
    config = _load(args.config, with_commands=True)
    if config is None:
        return 2
    setup_logging(config.log_level)
    make_private(config.state_dir)
    from .bot import Bot
    from .matrix import LoginFailed
    try:
        asyncio.run(Bot(config).run())
    except LoginFailed as exc:
        print(f"spbot: {exc}", file=sys.stderr)
        return 3
    except ConfigError as exc:
        _print_problems(exc.problems, args.config)
        return 2
    return 0


def _doctor(args) -> int:
    config = _load(args.config, with_commands=True)
    if config is None:
        return 2
    from .doctor import run_checks
    return asyncio.run(run_checks(config))


def _trust(args) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    from .trustcli import accept, reset
    if args.action == "accept":
        if not args.user:
            print("spbot trust accept needs the admin's user id", file=sys.stderr)
            return 2
        return asyncio.run(accept(config, args.user))
    return asyncio.run(reset(config))


def _config(args) -> int:
    """`config example` prints the generated example; `config check FILE` validates without connecting."""
    if args.action == "example":
        from commands import load_all
        from .config_example import render_example
        load_all()
        print(render_example(), end="")
        return 0
    if args.file is None:
        print("spbot config check needs the file to check", file=sys.stderr)
        return 2
    config = _load(args.file, with_commands=True)
    if config is None:
        return 2
    print(f"{args.file}: valid ({len(config.admins)} admins, sections: "
          f"{', '.join(sorted(config.model_extra or {})) or 'none'})")
    return 0


def _console(args) -> int:
    from .console import run_console
    return asyncio.run(run_console(args.dev_json, args.user))


def _dev(args) -> int:
    from . import devup
    if args.action == "up":
        dev = devup.up()
        print(f"dev stack up: homeserver {dev['homeserver']}, room {dev['room_id']}, "
              f"bot {dev['bot_user_id']}")
        print(f"accounts and passwords: {devup.STATE / 'dev.json'}")
    else:
        devup.down()
        print("dev stack down")
    return 0
