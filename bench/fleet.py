"""Time to the one gathered reply of `!all ping` for a fleet of 2, 5 and 10 bots, all real processes in
one encrypted room on one fresh loopback Synapse, as an E2EE admin client sees it (command sent → the
reply that lists every host). Also counts the messages the room shows per `!all` (goal: exactly one).
Prints its figures; asserts nothing.

    .venv/bin/python bench/fleet.py [--sizes 2 5 10] [--rounds 5]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spbot.chatclient import ChatClient  # noqa: E402
from spbot.devstack import BotProcess, PlainSession, Synapse, free_port, write_bot_config  # noqa: E402

PASSWORD = "bench password 42"
HOSTS = ["h00", "h01", "h02", "h03", "h04", "h05", "h06", "h07", "h08", "h09"]


async def fleet_of(size: int, synapse: Synapse, work: Path, admin: str, client: ChatClient
                   ) -> tuple[str, list[BotProcess], dict[str, str]]:
    users = {h: synapse.register(f"bench-{size}-{h}", PASSWORD, admin=True) for h in HOSTS[:size]}
    owner = PlainSession.login(synapse.url, admin, PASSWORD)
    room = owner.create_encrypted_room(f"fleet of {size}", list(users.values()))
    owner.logout()
    (work / "pw").write_text(PASSWORD)
    processes = []
    for host, user in users.items():
        peers = ", ".join(f'{h} = "{u}"' for h, u in users.items() if h != host)
        extra = (f'host = "{host}"\n[upgrade]\ncheck_enabled = false\n[fleet]\npeers = {{ {peers} }}\n'
                 f'default = "h00"\nanswer_timeout = "20s"\nheartbeat_interval = "30s"\n')
        config = write_bot_config(work / f"{size}-{host}.toml", homeserver=synapse.url, user_id=user,
                                  password_file=work / "pw", admins=[admin], rooms=[room],
                                  state_dir=work / f"{size}-{host}", log_level="WARNING", extra=extra)
        process = BotProcess(config, work / f"{size}-{host}.log", cwd=ROOT)
        process.start()
        processes.append(process)
    for user in users.values():
        await client.wait_joined(room, user, 120)
    for host, user in users.items():                      # each bot answers: sessions shared, keys known
        for _ in range(60):
            try:
                await client.command(room, f"!on {host} ping", user, timeout=10)
                break
            except asyncio.TimeoutError:
                pass
    return room, processes, users


async def measure(client: ChatClient, room: str, users: dict[str, str], rounds: int) -> tuple[list[float], int]:
    bots = set(users.values())
    times, extra_messages = [], 0
    for _ in range(rounds + 1):                            # the first is a warm-up
        started = time.perf_counter()
        sent = await client.send(room, "!all ping")
        reply = await client.wait_for(lambda e: e.reply_to == sent and e.sender in bots, timeout=60)
        elapsed = (time.perf_counter() - started) * 1000
        await asyncio.sleep(1.0)
        shown = [e for e in client.replies_to(sent) if e.sender in bots]
        extra_messages += len(shown) - 1
        if f"{len(users)} of {len(users)} servers answered" not in reply.body:
            print(f"  incomplete: {reply.body.splitlines()[0]}")
        times.append(elapsed)
    return times[1:], extra_messages


async def main(sizes: list[int], rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="spbot-fleet-bench-"))
    synapse = Synapse(work / "synapse", free_port())
    synapse.configure()
    synapse.start()
    try:
        admin = synapse.register("admin", PASSWORD)
        client = await ChatClient(synapse.url, admin, PASSWORD, work / "client").start()
        for size in sizes:
            room, processes, users = await fleet_of(size, synapse, work, admin, client)
            try:
                times, extra = await measure(client, room, users, rounds)
                ordered = sorted(times)
                print(f"{size:2d} bots: !all ping → one gathered reply: median {statistics.median(ordered):6.0f} ms, "
                      f"max {ordered[-1]:6.0f} ms over {len(times)} rounds; extra messages in the room: {extra}")
            finally:
                for process in processes:
                    process.stop()
        await client.stop()
    finally:
        synapse.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.sizes, args.rounds))
