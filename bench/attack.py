"""Attack and fault run against a real bot on a fresh loopback Synapse: restarts and kill -9 at random
moments, an offline backlog, replayed ciphertext, commands from people who must not be obeyed, a
homeserver outage across restarts, ✅ votes with a kill -9 right after, to-device noise and claimed
one-time keys from a stranger (bench/attack_device.py), a spell in which the kernel refuses the bot's writes (as a full disk
would: RLIMIT_FSIZE 0 set with prlimit), a search of the state directory for a delivered password, a
state database damaged after a kill -9, and a state directory put back as it was before some commands.
Prints the figures (cases, restarts, lost, doubled, unauthorized, secrets found); asserts nothing.

    .venv/bin/python bench/attack.py [--rounds 10] [--seed 7]
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spbot.chatclient import ChatClient  # noqa: E402
from spbot.devstack import (BotProcess, PlainSession, Synapse, copy_bot_state, free_port,  # noqa: E402
                            write_bot_config)

from attack_device import hostile_to_device  # noqa: E402

PASSWORD = "attack run password 42"
PASSWORD_RE = re.compile(r"Password: ((?:[a-z2-9]{4}-){4}[a-z2-9]{4})")
SETTLE = 25.0          # how long a command may take to be answered after the bot is back


@dataclass
class Figures:
    cases: int = 0
    restarts: int = 0
    lost: int = 0
    doubled: int = 0
    unauthorized: int = 0
    secrets_found: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, cases: int, lost: int = 0, doubled: int = 0, unauthorized: int = 0,
            secrets: int = 0, restarts: int = 0, detail: str = "") -> None:
        self.cases += cases
        self.lost += lost
        self.doubled += doubled
        self.unauthorized += unauthorized
        self.secrets_found += secrets
        self.restarts += restarts
        self.notes.append(f"{name:<34} cases {cases:>4}  restarts {restarts:>3}  lost {lost:>3}  "
                          f"doubled {doubled:>3}  unauthorized {unauthorized:>3}  secrets {secrets:>2}"
                          + (f"  ({detail})" if detail else ""))


class Run:
    def __init__(self, work: Path, rng: random.Random):
        self.work, self.rng = work, rng
        self.synapse = Synapse(work / "synapse", free_port())
        self.figures = Figures()
        self.password = PASSWORD

    # --- set-up --------------------------------------------------------------------------------

    async def start(self) -> None:
        self.synapse.configure()
        self.synapse.start()
        users = {name: self.synapse.register(name, PASSWORD) for name in ("alice", "bob", "carol", "mallory")}
        self.bot_user = self.synapse.register("spbot", PASSWORD, admin=True)
        owner = PlainSession.login(self.synapse.url, users["alice"], PASSWORD)
        self.room = owner.create_encrypted_room("attack run", [users["bob"], users["carol"], users["mallory"],
                                                               self.bot_user])
        for name in ("bob", "carol", "mallory"):
            session = PlainSession.login(self.synapse.url, users[name], PASSWORD)
            session.join(self.room)
            session.logout()
        owner.logout()
        (self.work / "pw").write_text(PASSWORD)
        self.state_dir = self.work / "state"
        config = write_bot_config(
            self.work / "bot.toml", homeserver=self.synapse.url, user_id=self.bot_user,
            password_file=self.work / "pw", admins=[users["alice"], users["bob"]], rooms=[self.room],
            state_dir=self.state_dir, log_level="INFO",
            extra='max_command_age = "30m"\nundecryptable_wait = "3s"\nplugins = ["tests.bot_plugins"]\n'
                  '\n[upgrade]\ncheck_enabled = false\n')
        self.bot = BotProcess(config, self.work / "bot.log", cwd=ROOT)
        self.bot.start()
        self.clients = {}
        for name in ("alice", "bob", "carol", "mallory"):
            self.clients[name] = await ChatClient(self.synapse.url, users[name], PASSWORD,
                                                  self.work / f"client-{name}").start()
        await self.clients["alice"].wait_joined(self.room, self.bot_user, 90)
        await self.clients["alice"].command(self.room, "!ping", self.bot_user, timeout=60)

    async def stop(self) -> None:
        for client in self.clients.values():
            await client.stop()
        self.bot.stop()
        self.synapse.stop()

    # --- helpers -------------------------------------------------------------------------------

    def marks(self) -> collections.Counter:
        path = self.state_dir / "marks.txt"
        return collections.Counter(path.read_text().split() if path.exists() else [])

    def restart(self, sig: int = signal.SIGKILL) -> None:
        self.bot.stop(sig)
        self.bot.start()

    async def answered(self, client: ChatClient, event_ids: list[str], timeout: float = SETTLE) -> set[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = {e for e in event_ids if client.replies_to(e, self.bot_user)}
            if len(done) == len(event_ids):
                return done
            await asyncio.sleep(0.25)
        return {e for e in event_ids if client.replies_to(e, self.bot_user)}

    def tally(self, name: str, tokens: dict[str, str], answered: set[str], restarts: int) -> None:
        marks = self.marks()
        lost = sum(1 for event, token in tokens.items() if marks[token] == 0 and event not in answered)
        doubled = sum(1 for token in tokens.values() if marks[token] > 1)
        self.figures.add(name, len(tokens), lost=lost, doubled=doubled, restarts=restarts,
                         detail=f"ran {sum(1 for t in tokens.values() if marks[t])}, answered {len(answered)}")

    # --- scenarios -----------------------------------------------------------------------------

    async def kill_storm(self, rounds: int, per_round: int = 6) -> None:
        alice, tokens, restarts = self.clients["alice"], {}, 0
        for _ in range(rounds):
            for _ in range(per_round):
                token = uuid.uuid4().hex[:10]
                tokens[await alice.send(self.room, f"!mark {token}")] = token
            await asyncio.sleep(self.rng.uniform(0.0, 0.4))
            self.restart(signal.SIGKILL)
            restarts += 1
            await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        self.tally("kill -9 during commands", tokens, await self.answered(alice, list(tokens)), restarts)

    async def vote_storm(self, rounds: int) -> None:
        """bob's ✅ on alice's approval request, then kill -9 a moment later: each request runs once, or its
        command is answered that it was stopped before it started; none is lost or run twice."""
        alice, bob, tokens, restarts = self.clients["alice"], self.clients["bob"], {}, 0
        for _ in range(rounds):
            token = uuid.uuid4().hex[:10]
            command = await alice.send(self.room, f"!danger {token}")
            request = await alice.wait_for(lambda e: e.sender == self.bot_user and e.reply_to == command
                                           and e.body.startswith("🔐 Request #"), timeout=60)
            tokens[command] = token
            await bob.react(self.room, request.event_id, "✅")
            await asyncio.sleep(self.rng.uniform(0.0, 0.3))
            self.restart(signal.SIGKILL)
            restarts += 1
            await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        deadline = time.monotonic() + 2 * SETTLE
        while time.monotonic() < deadline and not all(self.marks()[t] or self._told(e) for e, t in tokens.items()):
            await asyncio.sleep(0.5)
        self.tally("✅ then kill -9", tokens, {e for e in tokens if self._told(e)}, restarts)

    def _told(self, command: str) -> bool:
        """The bot answered the command beyond its approval request (that it was stopped, say)."""
        return any(not reply.body.startswith("🔐") for reply in self.clients["alice"].replies_to(command, self.bot_user))

    async def offline_backlog(self, count: int = 25) -> None:
        alice, tokens = self.clients["alice"], {}
        self.bot.stop(signal.SIGTERM)
        for _ in range(count):
            token = uuid.uuid4().hex[:10]
            tokens[await alice.send(self.room, f"!mark {token}")] = token
        self.bot.start()
        self.tally(f"backlog of {count} while stopped", tokens, await self.answered(alice, list(tokens)), 1)

    async def replay(self) -> None:
        alice, mallory = self.clients["alice"], self.clients["mallory"]
        token = uuid.uuid4().hex[:10]
        original = await alice.send(self.room, f"!mark {token}")
        await self.answered(alice, [original])
        raw = await self._raw_event(original)
        self.restart(signal.SIGTERM)
        await alice.command(self.room, "!ping", self.bot_user, timeout=60)
        for who in (alice, mallory):
            await who.send_unencrypted(self.room, "m.room.encrypted", raw["content"])
        await asyncio.sleep(8)
        ran = self.marks()[token]
        self.figures.add("replayed ciphertext after restart", 2, doubled=max(0, ran - 1), restarts=1,
                         unauthorized=max(0, ran - 1), detail=f"ran {ran} time(s) in all")

    async def _raw_event(self, event_id: str) -> dict:
        """The event as the server holds it (ciphertext), read without the client's decryption."""
        client = self.clients["alice"].client
        async with httpx.AsyncClient(base_url=self.synapse.url, timeout=30) as http:
            response = await http.get(f"/_matrix/client/v3/rooms/{quote(self.room)}/event/{quote(event_id)}",
                                      headers={"Authorization": f"Bearer {client.access_token}"})
        source = response.json()
        if source.get("type") != "m.room.encrypted":
            raise RuntimeError(f"could not read the ciphertext of {event_id}: {response.status_code}")
        return source

    async def strangers(self) -> None:
        tokens, cases = {}, 0
        for name in ("carol", "mallory"):
            for _ in range(3):
                token = uuid.uuid4().hex[:10]
                tokens[await self.clients[name].send(self.room, f"!mark {token}")] = token
                cases += 1
        token = uuid.uuid4().hex[:10]
        await self.clients["alice"].send_unencrypted(self.room, "m.room.message",
                                                     {"msgtype": "m.text", "body": f"!mark {token}"})
        tokens["unencrypted"] = token
        cases += 1
        await asyncio.sleep(6)
        marks = self.marks()
        ran = sum(1 for t in tokens.values() if marks[t])
        self.figures.add("family, stranger, unencrypted", cases, unauthorized=ran)

    async def approvals_from_wrong_people(self) -> None:
        alice, carol = self.clients["alice"], self.clients["carol"]
        token = uuid.uuid4().hex[:10]
        request = await alice.send(self.room, f"!danger {token}")
        await self.answered(alice, [request])
        await carol.send(self.room, "!approve 1")
        for reply in alice.replies_to(request, self.bot_user):
            await carol.react(self.room, reply.event_id, "✅")
            await alice.react(self.room, reply.event_id, "✅")
        await asyncio.sleep(5)
        self.figures.add("self / family approvals", 3, unauthorized=self.marks()[token])

    async def outage(self) -> None:
        alice, tokens = self.clients["alice"], {}
        for _ in range(3):
            token = uuid.uuid4().hex[:10]
            tokens[await alice.send(self.room, f"!mark {token}")] = token
        self.synapse.stop()
        self.restart(signal.SIGTERM)
        await asyncio.sleep(2)
        self.restart(signal.SIGKILL)
        await asyncio.sleep(2)
        self.synapse.start()
        self.tally("homeserver down across restarts", tokens, await self.answered(alice, list(tokens), 60), 2)

    async def writes_refused(self, count: int = 6) -> None:
        """Commands sent while the bot cannot write (its disk full): none runs then, each runs once after,
        and the admins are told once."""
        alice, tokens = self.clients["alice"], {}
        pid = self.bot.running_pid()
        limits = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        since = time.monotonic()
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, limits[1]))
        try:
            for _ in range(count):
                token = uuid.uuid4().hex[:10]
                tokens[await alice.send(self.room, f"!mark {token}")] = token
                await asyncio.sleep(self.rng.uniform(0.2, 1.0))
            await asyncio.sleep(self.rng.uniform(1.0, 4.0))
            ran_meanwhile = sum(1 for t in tokens.values() if self.marks()[t])
        finally:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, limits)
        answered = await self.answered(alice, list(tokens), 60)
        told = [e for e in alice.events if e.sender == self.bot_user and "I cannot write to my disk" in e.body
                and e.received > since]
        self.tally("writes refused (disk full)", tokens, answered, 0)
        self.figures.notes[-1] += f", {ran_meanwhile} ran while refused, told {len(told)} time(s)"

    async def damaged_state(self, count: int = 6) -> None:
        """kill -9 while commands run, then the state database damaged (every page but the schema, and the
        write-ahead log, overwritten with noise): the bot sets it aside and tells the admins; nothing runs
        twice, none of the commands sent before the loss runs after it (the notice asks to send again what
        is wanted), and commands sent after it are answered."""
        alice, before, after = self.clients["alice"], {}, {}
        for n in range(count):
            if n == count // 2:            # the rest arrive while it hangs (frozen), then it is killed
                await asyncio.sleep(self.rng.uniform(0.0, 0.5))
                os.kill(self.bot.running_pid(), signal.SIGSTOP)
            token = uuid.uuid4().hex[:10]
            before[await alice.send(self.room, f"!mark {token}")] = token
        self.bot.stop(signal.SIGKILL)
        ran_before = {token for token in before.values() if self.marks()[token]}
        for name, keep in (("spbot.db", 4096), ("spbot.db-wal", 0)):
            path = self.state_dir / name
            if path.exists():
                data = path.read_bytes()
                path.write_bytes(data[:keep] + os.urandom(max(0, len(data) - keep)))
        since = time.monotonic()
        self.bot.start()
        told = await alice.wait_for(lambda e: e.sender == self.bot_user and e.received > since
                                    and "state database was damaged" in e.body, timeout=60)
        for _ in range(2):
            token = uuid.uuid4().hex[:10]
            after[await alice.send(self.room, f"!mark {token}")] = token
        answered = await self.answered(alice, list(after), 60)
        marks = self.marks()
        ran_after_loss = sum(1 for token in before.values() if token not in ran_before and marks[token])
        self.figures.add("state database damaged", count + 2, restarts=1,
                         lost=sum(1 for event, token in after.items() if not marks[token] and event not in answered),
                         doubled=sum(1 for token in [*before.values(), *after.values()] if marks[token] > 1)
                         + ran_after_loss,
                         detail=f"{len(ran_before)} of {count} ran before the kill, {ran_after_loss} of the "
                                f"rest after the loss; told {1 if told else 0} time(s)")

    async def rolled_back(self, count: int = 4) -> None:
        """The state directory put back as it was before some commands ran (a server snapshot restored):
        none of them runs again, a copy of one re-posted does not run, and commands after are answered."""
        alice, before, after = self.clients["alice"], {}, {}
        self.bot.stop(signal.SIGTERM)
        copy_bot_state(self.state_dir, self.work / "snapshot")
        self.bot.start()
        for _ in range(count):
            token = uuid.uuid4().hex[:10]
            before[await alice.send(self.room, f"!mark {token}")] = token
        ran = len(await self.answered(alice, list(before), 60))
        copy = (await self._raw_event(next(iter(before))))["content"]
        self.bot.stop(signal.SIGTERM)
        copy_bot_state(self.work / "snapshot", self.state_dir)
        self.bot.start()
        try:                # its keys went back too: it stops, and systemd would start it again
            stopped = await asyncio.to_thread(self.bot.process.wait, 30)
        except subprocess.TimeoutExpired:
            stopped = None
        if stopped is not None:
            self.bot.start()
        await alice.command(self.room, "!ping", self.bot_user, timeout=90)
        await alice.send_unencrypted(self.room, "m.room.encrypted", copy)
        for _ in range(2):
            token = uuid.uuid4().hex[:10]
            after[await alice.send(self.room, f"!mark {token}")] = token
        answered = await self.answered(alice, list(after), 60)
        await asyncio.sleep(3)
        marks = self.marks()
        self.figures.add("state directory rolled back", count + 3, restarts=2 + (stopped is not None),
                         lost=sum(1 for event, token in after.items() if not marks[token] and event not in answered),
                         doubled=sum(1 for token in [*before.values(), *after.values()] if marks[token] > 1),
                         detail=f"{ran} of {count} answered before the restore; a copy of one re-posted after it; "
                                f"stopped for a new device: {stopped is not None}")

    async def secrets(self) -> None:
        alice = self.clients["alice"]
        name = "att" + uuid.uuid4().hex[:6]
        await alice.command(self.room, f"!user add {name}", self.bot_user, timeout=60)
        password = await self._delivered_password(alice, name)
        if password is None:
            self.figures.add("password at rest", 1, detail="no password delivered: " + self._dm_state(alice))
            return
        await asyncio.sleep(3)
        found = [str(p) for p in self.state_dir.rglob("*")
                 if p.is_file() and password.encode() in p.read_bytes()]
        found += [str(p) for p in Path(tempfile.gettempdir()).glob("restic-pw-*")]
        self.figures.add("password at rest", 1, secrets=len(found), detail=", ".join(found)[:200])

    def _dm_state(self, client: ChatClient) -> str:
        """Where the private room stands as alice's client sees it (no message text)."""
        rooms = [r for r, room in client.client.rooms.items() if room.name == "spbot (private)"]
        invited = [r for r, room in client.client.invited_rooms.items() if room.inviter == self.bot_user]
        seen = [(e.type, e.decrypted) for e in client.events if e.sender == self.bot_user and e.type in
                ("m.room.message", "m.room.encrypted")][-5:]
        undecrypted = {room.room_id for room, _ in client._undecrypted.values()}
        why = []
        for room, event in client._undecrypted.values():
            if room.room_id in rooms:
                known = client.client.olm.inbound_group_store.get(room.room_id, event.sender_key, event.session_id)
                try:
                    client.client.decrypt_event(event)
                    tried = "decrypts now"
                except Exception as exc:
                    tried = f"{exc.__class__.__name__}: {str(exc)[:80]}"
                why.append(f"key in memory {known is not None}, room_id {event.room_id is not None}, {tried}")
        return (f"joined {rooms}, invited {invited}, undecrypted in {sorted(undecrypted)[:3]} "
                f"({len(client._undecrypted)} in all), last seen from the bot {seen}, {why}")

    async def _delivered_password(self, client: ChatClient, name: str) -> str | None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for room_id, room in list(client.client.invited_rooms.items()):
                if room.inviter == self.bot_user:                # the bot's private room with alice
                    await client.join(room_id)
            for seen in client.events:
                found = PASSWORD_RE.search(seen.body) if seen.sender == self.bot_user else None
                if found and name in seen.body:
                    return found.group(1)
            await asyncio.sleep(0.5)
        return None


async def main(rounds: int, seed: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="spbot-attack-"))
    run = Run(work, random.Random(seed))
    started = time.monotonic()
    await run.start()
    try:
        for scenario in (run.strangers, run.approvals_from_wrong_people, run.offline_backlog,
                         lambda: run.kill_storm(rounds), lambda: run.vote_storm(rounds),
                         lambda: hostile_to_device(run), run.replay, run.outage, run.writes_refused,
                         run.secrets, run.damaged_state, run.rolled_back):
            try:
                await scenario()
            except Exception as exc:               # one broken scenario must not hide the others
                run.figures.notes.append(f"scenario failed: {exc.__class__.__name__}: {str(exc)[:200]}")
    finally:
        await run.stop()
    f = run.figures
    print(f"attack run in {time.monotonic() - started:.0f} s (work dir {work})")
    for line in f.notes:
        print("  " + line)
    false_alarms = (work / "bot.log").read_text(errors="replace").count("homeserver_behind_position")
    print(f"total: cases {f.cases}, restarts {f.restarts}, lost {f.lost}, doubled {f.doubled}, "
          f"unauthorized {f.unauthorized}, secrets found {f.secrets_found}, homeserver taken for one put back "
          f"in time {false_alarms} (it never is in this run)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.seed))
