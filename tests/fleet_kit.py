"""Several bots in one encrypted room, each on the homeserver given (one Synapse, or two that federate):
the set-up the fleet tests and the fleet benchmark share."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from spbot.chatclient import ChatClient
from spbot.devstack import PlainSession, Synapse

from .conftest import BOT_PASSWORD, PASSWORD, TestBot, wait_answering



@dataclass
class FleetBot:
    host: str
    synapse: Synapse
    user_id: str
    admins: list[str]
    bot: TestBot | None = None


@dataclass
class Fleet:
    room_id: str
    bots: dict[str, FleetBot] = field(default_factory=dict)

    def by_user(self, user_id: str) -> str | None:
        return next((b.host for b in self.bots.values() if b.user_id == user_id), None)


def fleet_config(me: FleetBot, others: list[FleetBot], default: str, *, answer_timeout: float = 4,
                 heartbeat: float = 1, silent_after: float = 5) -> str:
    peers = ", ".join(f'{b.host} = "{b.user_id}"' for b in others)
    return (f'host = "{me.host}"\n'
            f"[fleet]\npeers = {{ {peers} }}\ndefault = \"{default}\"\n"
            f'answer_timeout = "{answer_timeout}s"\nheartbeat_interval = "{heartbeat}s"\n'
            f'silent_after = "{silent_after}s"\n')


def register_user(synapse: Synapse, localpart: str, password: str = PASSWORD, admin: bool = False) -> str:
    return synapse.register(localpart, password, admin=admin)


def create_room(owner_server: Synapse, owner_id: str, members: list[tuple[Synapse, str]], name: str) -> str:
    """An encrypted room made by `owner_id`; every (homeserver, user) joins, except bots, which join on
    the owner's invitation themselves."""
    owner = PlainSession.login(owner_server.url, owner_id, PASSWORD)
    room = owner.create_encrypted_room(name, [user for _, user in members])
    owner.logout()
    return room


def join_people(room_id: str, people: list[tuple[Synapse, str]]) -> None:
    for server, user in people:
        session = PlainSession.login(server.url, user, PASSWORD)
        session.join(room_id)
        session.logout()


async def start_bots(fleet: Fleet, root: Path, watcher: ChatClient, default: str,
                     env: dict[str, dict] | None = None, **timing) -> None:
    """Start every bot of the fleet (config from `fleet_config`; `env`: a process environment by host)
    and wait until each answers."""
    members = list(fleet.bots.values())
    for fb in members:
        others = [b for b in members if b is not fb]
        directory = root / f"bot-{fb.host}"
        directory.mkdir(parents=True, exist_ok=True)
        fb.bot = TestBot(fb.synapse, directory, fleet.room_id, fb.admins, fb.user_id,
                         extra=fleet_config(fb, others, default, **timing))
        if env and fb.host in env:
            fb.bot.process.env = env[fb.host]
        fb.bot.start()
    for fb in members:
        await watcher.wait_joined(fleet.room_id, fb.user_id, timeout=60)
    for fb in members:
        await wait_answering_on(watcher, fb)


async def wait_answering_on(client: ChatClient, fb: FleetBot, timeout: float = 60.0) -> None:
    """Like wait_answering, with the command addressed to this bot."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await client.command(fb.bot.room_id, f"!on {fb.host} ping", fb.user_id, timeout=10)
            return
        except asyncio.TimeoutError:
            if fb.bot.process.running_pid() is None:
                raise RuntimeError(f"bot {fb.host} stopped:\n" + fb.bot.log()[-3000:])
            if asyncio.get_running_loop().time() > deadline:
                raise


__all__ = ["BOT_PASSWORD", "Fleet", "FleetBot", "create_room", "join_people", "register_user", "start_bots",
           "wait_answering", "wait_answering_on"]
