"""The out-of-band loop wakes on every change of the homeserver connection, even one that comes while a
pass is running or before the first answer (a lost wake-up there lost the catch-up note after an outage,
or never recorded an outage that began before the first sync)."""
from __future__ import annotations

import asyncio
import time

from spbot.config import Config
from spbot.features.outofband import OutOfBandFeature
from spbot.features.outofband.feature import OUTAGE_KEY
from spbot.store import Store


class Connection:
    def __init__(self):
        self.online, self.offline = asyncio.Event(), asyncio.Event()
        self.step_watchers: list = []

    def up(self) -> None:
        self.online.set()
        self.offline.clear()

    def down(self) -> None:
        self.online.clear()
        self.offline.set()


class Host:
    def __init__(self, config: Config, store: Store):
        self.config, self.store, self.connection = config, store, Connection()
        self.alerts = type("Alerts", (), {"listeners": []})()
        self.notes: list[str] = []

    def spawn(self, coro, name: str = "") -> asyncio.Task:
        return asyncio.create_task(coro, name=name)

    async def notify(self, reply) -> list[int]:
        self.notes.append(reply.body)
        return [len(self.notes)]


async def running(tmp_path) -> tuple[OutOfBandFeature, Host]:
    config = Config(homeserver="http://127.0.0.1:1", user_id="@bot:localhost", admins=["@a:localhost"],
                    state_dir=str(tmp_path), password={"file": "/nonexistent"}, allow_any_admin_room=True,
                    outofband={"urls": [], "grace": "1h"})
    host = Host(config, await Store(tmp_path / "spbot.db").open())
    feature = OutOfBandFeature.create(host, config)
    return feature, host


async def until(condition, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the loop did not wake"
        await asyncio.sleep(0.01)


async def test_the_homeserver_back_during_a_pass_still_brings_the_catch_up_note(tmp_path):
    feature, host = await running(tmp_path)
    host.connection.down()
    await host.store.put(OUTAGE_KEY, time.time() - 7200)           # down for two hours already
    in_pass, release = asyncio.Event(), asyncio.Event()
    await feature.start()
    due = feature.relay.due

    async def slow_due(now):                                       # the pass is busy when it comes back
        in_pass.set()
        await release.wait()
        return await due(now)
    feature.relay.due = slow_due
    try:
        await asyncio.wait_for(in_pass.wait(), 3)
        host.connection.up()
        release.set()
        feature.relay.due = due
        await until(lambda: host.notes)
        assert "could not be reached for 2h00m" in host.notes[0]
    finally:
        await feature.stop()
        await host.store.close()


async def test_an_outage_before_the_first_answer_is_recorded(tmp_path):
    feature, host = await running(tmp_path)
    await feature.start()                                          # neither online nor offline yet
    try:
        await asyncio.sleep(0.05)
        host.connection.down()
        await until_stored(host)
    finally:
        await feature.stop()
        await host.store.close()


async def until_stored(host: Host) -> None:
    for _ in range(300):
        if await host.store.get(OUTAGE_KEY) is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the outage was not recorded")
