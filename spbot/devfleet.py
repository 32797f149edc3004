"""`deploy/synapse-dev/up --fleet`: two Synapses on loopback that federate (server names localhost:<port>,
a TLS federation listener with a self-signed certificate), a bot on each (hosts nas and box), admins on
both (alice and bob on the first, dan on the second), one encrypted room; the bots run in the dev
sandbox. Writes dev.json in its usual shape (pointing at the first homeserver and its bot; the shared
room is room_id) plus `fleet`: one entry per bot."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Callable

from .chatclient import ChatClient
from .devsandbox.standins import Sandbox
from .devsandbox.tomlout import dumps
from .devstack import BotProcess, PlainSession, Synapse, free_port

ROOT = Path(__file__).resolve().parent.parent
SERVERS = [("one", "nas", [("alice", True), ("bob", True), ("carol", False)]), ("two", "box", [("dan", True)])]
BOT = "spbot"


def _servers(state: Path, previous: list[dict]) -> list[Synapse]:
    ports = {entry["host"]: (entry["port"], entry["federation_port"]) for entry in previous}
    servers = []
    for name, host, _ in SERVERS:
        port, federation_port = ports.get(host, (free_port(), free_port()))
        server = Synapse(state / "fleet" / name, port, federation_port=federation_port)
        server.configure()
        servers.append(server)
    return servers


def _password(state: Path, key: str) -> str:
    path = state / "fleet" / "passwords.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    if key not in known:
        known[key] = os.urandom(9).hex()
        path.write_text(json.dumps(known))
        path.chmod(0o600)
    return known[key]


def up(state: Path, previous: dict, say: Callable[[str], None]) -> dict:
    (state / "fleet").mkdir(parents=True, exist_ok=True)
    servers = _servers(state, previous.get("fleet") or [])
    for server in servers:
        server.start()
    people, bots = [], []
    for server, (name, host, persons) in zip(servers, SERVERS):
        for person, admin in persons:
            people.append({"user_id": server.register(person, _password(state, person)),
                           "password": _password(state, person), "admin": admin, "homeserver": server.url})
        bots.append({"host": host, "homeserver": server.url, "server_name": server.server_name,
                     "bot_user_id": server.register(BOT, _password(state, f"{BOT}-{host}"), admin=True),
                     "port": server.port, "federation_port": server.federation_port})
    room_id = previous.get("room_id") if previous.get("fleet") else None
    room_id = room_id or _create_room(people, bots)
    admins = [p["user_id"] for p in people if p["admin"]]
    for bot in bots:
        _start_bot(state, bot, [b for b in bots if b is not bot], admins, room_id)
    first = [p for p in people if p["homeserver"] == servers[0].url]
    dev = {"homeserver": servers[0].url, "server_name": servers[0].server_name,
           "bot_user_id": bots[0]["bot_user_id"], "room_id": room_id,
           "users": [{k: p[k] for k in ("user_id", "password", "admin")} for p in first],
           "port": servers[0].port, "sandbox": True, "simulate_cloud": False, "fleet": bots,
           "fleet_users": people}
    asyncio.run(_wait_answering(state, dev))
    say(f"fleet: {', '.join(b['host'] + ' on ' + b['server_name'] for b in bots)} in {room_id}")
    return dev


def _create_room(people: list[dict], bots: list[dict]) -> str:
    owner, *others = people
    session = PlainSession.login(owner["homeserver"], owner["user_id"], owner["password"])
    room_id = session.create_encrypted_room("Family servers", [p["user_id"] for p in others] +
                                            [b["bot_user_id"] for b in bots])
    session.logout()
    for person in others:
        member = PlainSession.login(person["homeserver"], person["user_id"], person["password"])
        member.join(room_id)
        member.logout()
    return room_id


def _bot_dir(state: Path, host: str) -> Path:
    return state / "fleet" / f"bot-{host}"


def _process(state: Path, host: str) -> BotProcess:
    env = os.environ.copy()
    env["PATH"] = f"{Sandbox(state).bin_dir}{os.pathsep}{env.get('PATH', '')}"
    directory = _bot_dir(state, host)
    return BotProcess(directory / "bot.toml", directory / "bot.log", env=env, cwd=ROOT)


def _start_bot(state: Path, bot: dict, others: list[dict], admins: list[str], room_id: str) -> None:
    from .devup import _sandbox_sections
    directory = _bot_dir(state, bot["host"])
    directory.mkdir(parents=True, exist_ok=True)
    password_file = directory / "bot.password"
    password_file.write_text(_password(state, f"{BOT}-{bot['host']}") + "\n")
    password_file.chmod(0o600)
    Sandbox(state).install()
    config = {"homeserver": bot["homeserver"], "user_id": bot["bot_user_id"], "host": bot["host"],
              "password": {"file": str(password_file)}, "admins": admins, "rooms": [room_id],
              "state_dir": str(directory / "state"), "log_level": "INFO",
              **_sandbox_sections(state),
              "fleet": {"peers": {o["host"]: o["bot_user_id"] for o in others}, "default": "nas",
                        "heartbeat_interval": "30s", "silent_after": "2m"}}
    (directory / "bot.toml").write_text(dumps(config))
    (directory / "bot.toml").chmod(0o600)
    process = _process(state, bot["host"])
    if process.running_pid() is not None:
        process.stop()
    process.start()


async def _wait_answering(state: Path, dev: dict, timeout: float = 90.0) -> None:
    alice = dev["users"][0]
    client = ChatClient(dev["homeserver"], alice["user_id"], alice["password"],
                        state / "console" / "fleet-check" / alice["user_id"], device_name="spbot dev up")
    await client.start()
    try:
        for bot in dev["fleet"]:
            await client.wait_joined(dev["room_id"], bot["bot_user_id"], timeout)
        deadline = asyncio.get_running_loop().time() + timeout
        for bot in dev["fleet"]:
            while True:
                try:
                    await client.command(dev["room_id"], f"!on {bot['host']} ping", bot["bot_user_id"],
                                         timeout=10)
                    break
                except asyncio.TimeoutError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise RuntimeError(f"{bot['host']} did not answer; see "
                                           f"{_bot_dir(state, bot['host']) / 'bot.log'}")
    finally:
        await client.stop()


def down(state: Path, dev: dict) -> None:
    for bot in dev.get("fleet") or []:
        _process(state, bot["host"]).stop()
    for (name, _, _), bot in zip(SERVERS, dev.get("fleet") or []):
        Synapse(state / "fleet" / name, bot["port"], federation_port=bot["federation_port"]).stop()
