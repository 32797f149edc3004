"""`deploy/synapse-dev/up` and `down`: the whole dev stack on loopback, idempotent.

up: Synapse (port kept in state), accounts @alice and @bob (admins), @carol (family member), the bot
(a homeserver admin), one encrypted room with all of them, the bot process; returns once the bot
answers !ping; writes state/dev.json. down stops both; up again brings back the same everything."""
from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

from .chatclient import ChatClient
from .devstack import BotProcess, PlainSession, Synapse, free_port, port_is_free, write_bot_config

STATE = Path(__file__).resolve().parent.parent / "deploy" / "synapse-dev" / "state"
PEOPLE = [("alice", True), ("bob", True), ("carol", False)]
BOT = "spbot"


def _load(state: Path) -> dict:
    path = state / "dev.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _secrets(state: Path) -> dict:
    path = state / "passwords.json"
    if path.exists():
        return json.loads(path.read_text())
    passwords = {name: secrets.token_urlsafe(12) for name, _ in PEOPLE + [(BOT, True)]}
    path.write_text(json.dumps(passwords))
    path.chmod(0o600)
    return passwords


def up(state: Path = STATE, port: int | None = None) -> dict:
    state.mkdir(parents=True, exist_ok=True)
    previous = _load(state)
    port = port or previous.get("port") or (8008 if port_is_free(8008) else free_port())
    synapse = Synapse(state / "synapse", port)
    synapse.configure()
    synapse.start()
    passwords = _secrets(state)
    users = [{"user_id": synapse.register(name, passwords[name], admin=False),
              "password": passwords[name], "admin": admin} for name, admin in PEOPLE]
    bot_user = synapse.register(BOT, passwords[BOT], admin=True)
    room_id = previous.get("room_id") or _create_room(synapse.url, users, bot_user)
    dev = {"homeserver": synapse.url, "server_name": synapse.server_name, "bot_user_id": bot_user,
           "room_id": room_id, "users": users, "port": port}
    (state / "dev.json").write_text(json.dumps(dev, indent=2))
    (state / "dev.json").chmod(0o600)
    bot = _start_bot(state, dev, passwords[BOT])
    asyncio.run(_wait_answering(state, dev, bot))
    return dev


def _create_room(url: str, users: list[dict], bot_user: str) -> str:
    alice, *others = users
    owner = PlainSession.login(url, alice["user_id"], alice["password"])
    room_id = owner.create_encrypted_room("Server admin", [u["user_id"] for u in others] + [bot_user])
    for user in others:
        member = PlainSession.login(url, user["user_id"], user["password"])
        member.join(room_id)
        member.logout()
    owner.logout()
    return room_id


def _start_bot(state: Path, dev: dict, password: str) -> BotProcess:
    password_file = state / "bot.password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    config = write_bot_config(
        state / "bot.toml", homeserver=dev["homeserver"], user_id=dev["bot_user_id"],
        password_file=password_file, admins=[u["user_id"] for u in dev["users"] if u["admin"]],
        rooms=[dev["room_id"]], state_dir=state / "bot")
    bot = BotProcess(config, state / "bot.log")
    if bot.running_pid() is None:
        bot.start()
    return bot


async def _wait_answering(state: Path, dev: dict, bot: BotProcess, timeout: float = 90.0) -> None:
    alice = dev["users"][0]
    client = ChatClient(dev["homeserver"], alice["user_id"], alice["password"],
                        state / "console" / alice["user_id"])
    await client.start()
    try:
        if bot.running_pid() is None:
            raise RuntimeError("the bot stopped:\n" + "\n".join(bot.log_text().splitlines()[-5:]))
        await client.wait_joined(dev["room_id"], dev["bot_user_id"], timeout)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await client.command(dev["room_id"], "!ping", dev["bot_user_id"], timeout=10)
                return
            except asyncio.TimeoutError:
                if bot.running_pid() is None:
                    raise RuntimeError("the bot stopped:\n" + "\n".join(bot.log_text().splitlines()[-5:]))
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"the bot did not answer; see {state / 'bot.log'}")
    finally:
        await client.stop()


def down(state: Path = STATE) -> None:
    BotProcess(state / "bot.toml", state / "bot.log").stop()
    dev = _load(state)
    if dev:
        Synapse(state / "synapse", dev["port"]).stop()
