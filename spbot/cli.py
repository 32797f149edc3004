"""The `spbot` command: run the bot, check its set-up, talk to it, drive the dev stack."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

# pydantic looks for plugins among every installed package's entry points on its first model: spbot
# uses none, and the scan costs time and memory at every start.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from .config import ConfigError, load_config
from .launch import loaded
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
    console.add_argument("--timeout", type=float, default=600.0,
                         help="with piped input: how long to wait for each command's job (seconds)")
    trust = sub.add_parser("trust", help="accept an admin's new identity, or reset the bot's own")
    trust.add_argument("action", choices=["accept", "reset"])
    trust.add_argument("user", nargs="?", help="the admin whose new identity to accept")
    trust.add_argument("--config", "-c", required=True, type=Path)
    config = sub.add_parser("config", help="print the complete example configuration, or check a file")
    config.add_argument("action", choices=["example", "check"])
    config.add_argument("file", nargs="?", type=Path, help="the file to check (config check)")
    services = sub.add_parser("services", help="detect: which catalogue services run here, as config to copy")
    services.add_argument("action", choices=["detect"])
    services.add_argument("--root", type=Path, default=Path("/"), help="the machine's root (default /)")
    dev = sub.add_parser("dev", help="the dev stack: up, down, restart (the bot alone), fail-unit and "
                         "recover-unit NAME, disk-alert and disk-ok")
    dev.add_argument("action", choices=["up", "down", "restart", "fail-unit", "recover-unit",
                                        "disk-alert", "disk-ok"])
    dev.add_argument("unit", nargs="?", help="fail-unit/recover-unit: the sandbox unit")
    dev.add_argument("--real-system", action="store_true",
                     help="up: no sandbox; upgrade, reboot, cleanup, ssh act on this machine")
    dev.add_argument("--simulate-cloud", action="store_true",
                     help="up: local Hetzner and DNS API servers behind [hetzner] and [dns]")
    dev.add_argument("--fleet", action="store_true",
                     help="up: two federating homeservers with a bot each (nas, box) in one room")
    dev.add_argument("--state", type=Path, default=None, help=argparse.SUPPRESS)
    dev.add_argument("--after", type=float, default=0.0, help=argparse.SUPPRESS)
    dev.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)
    dev.add_argument("--no-wait", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command != "run":
        loaded()                 # `run` says when it has loaded the bot
    return {"run": _run, "doctor": _doctor, "console": _console, "dev": _dev,
            "trust": _trust, "config": _config, "services": _services}[args.command](args)


def _load(path: Path, with_commands: bool = False):
    """The validated config (with every command module's own section when asked), or None after
    printing one line per problem."""
    try:
        if with_commands:
            from spbot.commands import load_all
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
    from .statedir import AlreadyRunning, hold_state_lock, make_private, use_private_umask
    use_private_umask()          # before anything is written: the state directory holds secrets
    config = _load(args.config, with_commands=True)
    if config is None:
        return 2
    setup_logging(config.log_level)
    make_private(config.state_dir)
    try:
        hold_state_lock(config.state_dir)
    except AlreadyRunning as exc:
        print(f"spbot: {exc}", file=sys.stderr)
        return 4
    except OSError as exc:
        return _cannot_write_at_start(config, exc)
    from .bot import Bot
    from .features import all_features
    from .matrix import LoginFailed
    bot = Bot(config, features=all_features())
    loaded()
    try:
        asyncio.run(bot.run())
        _exit_now(1 if bot.failure else 0)      # a failure: the supervisor starts the bot again
    except LoginFailed as exc:
        print(f"spbot: {exc}", file=sys.stderr)
        return 3
    except ConfigError as exc:
        _print_problems(exc.problems, args.config)
        return 2
    except Exception as exc:
        return _cannot_write_at_start(config, exc)
    return 0


def _cannot_write_at_start(config, exc: Exception) -> int:
    """A full (or read-only, or failing) disk at start: said plainly, out of band too, and waited out
    (spbot/unwritable_start.py). Anything else is raised as it is."""
    from .cannot_write import cannot_write
    if not cannot_write(exc):
        raise exc
    from .unwritable_start import wait_until_writable
    return wait_until_writable(config, exc)


def _exit_now(code: int) -> None:
    """The bot has stopped: the outbox is flushed, the stores closed, every child ended. Tearing down the
    interpreter (freeing every object of nio and pydantic, one by one) would take longer than all of
    that together; the logs are flushed and the process ends here."""
    import logging
    import os
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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
    from .trust.cli import accept, reset
    if args.action == "accept":
        if not args.user:
            print("spbot trust accept needs the admin's user id", file=sys.stderr)
            return 2
        return asyncio.run(accept(config, args.user))
    return asyncio.run(reset(config))


def _config(args) -> int:
    """`config example` prints the generated example; `config check FILE` validates without connecting."""
    if args.action == "example":
        from spbot.commands import load_all
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


def _services(args) -> int:
    from .features.services.detect import detect, proposal
    found = detect(args.root)
    if not found:
        print(f"no catalogue service found under {args.root} (unit files, NixOS options)")
        return 0
    print(f"# found under {args.root}: {', '.join(f.name for f in found)}; copy what you want into the config")
    print(proposal(found), end="")
    return 0


def _console(args) -> int:
    from .console import run_console
    return asyncio.run(run_console(args.dev_json, args.user, args.timeout))


def _dev(args) -> int:
    from . import devup
    state = args.state or devup.STATE
    try:
        return _dev_action(args, devup, state)
    except (RuntimeError, ValueError) as exc:
        print(f"spbot dev {args.action}: {exc}", file=sys.stderr)
        return 1


def _dev_action(args, devup, state: Path) -> int:
    say = (lambda line: print(f"spbot dev: {line}", flush=True))
    if args.action == "up":
        dev = devup.up(state, args.port, sandbox=not args.real_system, simulate_cloud=args.simulate_cloud, say=say,
                       fleet=args.fleet)
        print(f"dev stack up: homeserver {dev['homeserver']}, room {dev['room_id']}, "
              f"bot {dev['bot_user_id']}")
        print(f"accounts and passwords: {state / 'dev.json'}")
        print("system: " + ("sandboxed (stand-ins under state/sandbox; --real-system to act on this "
                            "machine)" if dev["sandbox"] else "REAL: upgrade, reboot, cleanup and ssh act "
                            "on this machine"))
        if dev.get("fleet"):
            for bot in dev["fleet"]:
                print(f"fleet: {bot['host']} = {bot['bot_user_id']} on {bot['homeserver']}")
        else:
            print(f"your config overrides: {dev['local_config']} (then: spbot dev restart)")
    elif args.action == "down":
        devup.down(state)
        print("dev stack down")
    elif args.action == "restart":
        devup.restart(state, after=args.after, wait=not args.no_wait)
        print("bot restarted")
    elif args.action in ("disk-alert", "disk-ok"):
        mount = devup.disk_alert(state, on=args.action == "disk-alert")
        print(f"bot restarted with a warning threshold on {mount} just under its use: an alert within "
              "a minute" if args.action == "disk-alert" else "bot restarted with the usual thresholds")
    else:
        if not args.unit:
            print(f"spbot dev {args.action} needs a unit name", file=sys.stderr)
            return 2
        name = devup.fail_unit(state, args.unit, failed=args.action == "fail-unit")
        print(f"{name} is now " + ("failed (the bot's next check alerts within a minute)"
                                   if args.action == "fail-unit" else "running again"))
    return 0
