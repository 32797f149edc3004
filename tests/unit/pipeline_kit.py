"""Real pipeline parts on a real SQLite store, for the in-process unit tests (tests/unit/test_pipeline*).
The one stand-in is the homeserver connection: `FakeConnection.client.room_send` records what the outbox
sends (and can be told to fail) instead of talking to Matrix."""
from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from aiohttp import ClientConnectionError
from nio import RoomSendResponse

from spbot.audit import AuditLog
from spbot.config import Config
from spbot.messenger import Messenger
from spbot.outbox import Outbox
from spbot.registry import Registry, command
from spbot.render import Reply
from spbot.request import Request
from spbot.room_upgrades import RoomUpgrades
from spbot.store import Store

ROOM, OTHER_ROOM = "!admins:localhost", "!other:localhost"
ALICE, BOB, CAROL, STRANGER = "@alice:localhost", "@bob:localhost", "@carol:localhost", "@eve:localhost"
BOT = "@bot:localhost"


def make_config(tmp_path, **over: Any) -> Config:
    values = dict(homeserver="http://127.0.0.1:1", user_id=BOT, admins=[ALICE, BOB, CAROL],
                  rooms=[ROOM, OTHER_ROOM], state_dir=str(tmp_path), password={"file": str(tmp_path / "pw")},
                  timezone="UTC")
    values.update(over)
    return Config(**values)


class FakeClient:
    """What the outbox and the messenger use of nio's client; `room_send` records every event."""

    def __init__(self) -> None:
        self.user_id = BOT
        self.device_id = "BOTDEVICE"
        self.access_token = "syt_fake_token"
        self.rooms = {ROOM: SimpleNamespace(room_id=ROOM), OTHER_ROOM: SimpleNamespace(room_id=OTHER_ROOM)}
        self.should_query_keys = False
        self.sent: list[tuple[str, str, dict]] = []      # (room id, event type, content)
        self.failures: list[Exception] = []             # raised by the next sends, in order
        self.answers_lost = 0          # the next sends reach the "homeserver", but their answer is lost
        self.taken: dict[str, str] = {}                 # transaction id -> event id, as a homeserver keeps
        self.changed = asyncio.Event()

    async def room_send(self, room_id: str, event_type: str, content: dict, tx_id: str = "",
                        ignore_unverified_devices: bool = False):
        if self.failures:
            raise self.failures.pop(0)
        if tx_id in self.taken:        # a retry of a message it took: the first event, nothing new sent
            return RoomSendResponse(self.taken[tx_id], room_id)
        self.sent.append((room_id, event_type, json.loads(json.dumps(content))))
        self.taken[tx_id or f"none-{len(self.sent)}"] = event_id = f"$sent{len(self.sent)}"
        self.changed.set()
        if self.answers_lost:
            self.answers_lost -= 1
            raise ClientConnectionError("the connection dropped before the answer")
        return RoomSendResponse(event_id, room_id)


class FakeConnection:
    def __init__(self) -> None:
        self.client = FakeClient()
        self.first_sync_done = asyncio.Event()
        self.first_sync_done.set()
        self.online = asyncio.Event()
        self.online.set()


async def until_sent(client: FakeClient, count: int, timeout: float = 5.0) -> list[tuple[str, str, dict]]:
    """The first `count` events sent (waits for them)."""
    async def wait() -> None:
        while len(client.sent) < count:
            client.changed.clear()
            await client.changed.wait()
    await asyncio.wait_for(wait(), timeout)
    return client.sent[:count]


class Parts:
    """A store, an outbox on the fake connection, the messenger and the audit log, started."""

    def __init__(self, tmp_path, **config: Any):
        self.config = make_config(tmp_path, **config)
        self.store = Store(tmp_path / "spbot.db")
        self.connection = FakeConnection()
        self.outbox = Outbox(self.store, self.connection)
        self.upgrades = RoomUpgrades(self.store)
        self.messenger = Messenger(self.outbox, self.store, self.connection, self.config, self.upgrades)
        self.audit = AuditLog(self.store)
        self.tasks: set[asyncio.Task] = set()

    @property
    def sent(self) -> list[tuple[str, str, dict]]:
        return self.connection.client.sent

    async def start(self) -> "Parts":
        await self.store.open()
        await self.audit.start()
        await self.outbox.start()
        return self

    def spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.outbox.stop()
        await self.store.close()

    async def audit_rows(self) -> list[dict]:
        return [dict(r) for r in await self.store.fetchall("SELECT * FROM audit ORDER BY id")]


def request(text: str, sender: str = ALICE, room: str = ROOM, event_id: str = "$cmd", ts_ms: int = 0) -> Request:
    return Request(sender, "DEVICE", room, event_id, text, ts_ms)


def sample_registry() -> Registry:
    """A few commands of each kind: inline, a job with a lock, a dangerous one, one that asks its requester
    to confirm, and one that crashes."""
    registry = Registry()

    @command("hello", help="say hello", registry=registry)
    async def hello(ctx, name: str = "world") -> Reply:
        return Reply.text(f"hello {name}")

    @command("backup now", help="back up", locks={"backup"}, registry=registry)
    async def backup_now(ctx, service: str = "all") -> Reply:
        return Reply.text(f"backed up {service}")

    @command("backup list", help="list backups", registry=registry)
    async def backup_list(ctx) -> Reply:
        return Reply.text("no backups")

    async def wipe_preview(host, disk: str) -> str:
        return f"this wipes {disk}"

    @command("wipe", help="wipe a disk", dangerous=True, preview=wipe_preview, registry=registry)
    async def wipe(ctx, disk: str) -> Reply:
        return Reply.text(f"wiped {disk}")

    @command("boom", help="crash", registry=registry)
    async def boom(ctx) -> Reply:
        raise RuntimeError("kaboom")

    return registry


class Stopped(Exception):
    """Stands for the bot being killed at that moment."""


class PositionAnswer:
    """A homeserver's answer to the bot's position question (spbot/timeline.py homeserver_behind)."""

    def __init__(self, next_batch: str, status: int = 200):
        self.status, self.next_batch = status, next_batch

    async def json(self) -> dict:
        return {"next_batch": self.next_batch}

    def release(self) -> None:
        pass


def homeserver_at(position: str, asked: list | None = None):
    """A client's `send` for a homeserver whose sync position is `position`; each path asked is kept."""
    async def send(method: str, path: str, *args, **kwargs) -> PositionAnswer:
        if asked is not None:
            asked.append(path)
        return PositionAnswer(position)
    return send

