"""A step of reading the rooms failing the same way for STUCK_AFTER seconds tells the admins once,
ringing them, and its recovery is told (spbot/stuck_reading.py); what other watchers tell is left to
them. The alerts are recorded (the room's side of an alert is tested with the bot's own Alerts)."""
from __future__ import annotations

import errno
import sqlite3

import aiohttp
import pytest

from spbot.stuck_reading import ALERT_KEY, STUCK_AFTER, StuckReading


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Alerts:
    """What StuckReading asks of spbot.alerts.Alerts, recorded."""

    def __init__(self):
        self.fired, self.cleared = [], []

    async def fire(self, key, severity, text, todo=""):
        self.fired.append((key, severity, text, todo))
        return True

    async def clear(self, key, text):
        self.cleared.append((key, text))
        return True


def damage_met(path) -> sqlite3.DatabaseError:
    """What SQLite raises on a file that is not a database any more (its error code set)."""
    path.write_bytes(b"not a database, a failing disk's page " * 200)
    try:
        sqlite3.connect(path).execute("SELECT * FROM sqlite_master").fetchall()
    except sqlite3.DatabaseError as exc:
        return exc
    raise AssertionError("SQLite read the file")


@pytest.fixture
def watch():
    clock, alerts = Clock(), Alerts()
    return StuckReading(alerts, clock), clock, alerts


async def fail_for(watch, clock, seconds: float, exc: BaseException, step: str = "sync") -> None:
    end = clock.now + seconds
    while clock.now < end:
        await watch.failed(step, exc)
        clock.now += 10


async def test_the_same_failure_for_two_minutes_rings_the_admins_once_and_its_end_is_told(watch):
    stuck, clock, alerts = watch
    await fail_for(stuck, clock, STUCK_AFTER - 10, ValueError("nio could not read it"))
    assert alerts.fired == []
    await fail_for(stuck, clock, 60, ValueError("nio could not read it"))
    (key, severity, text, todo), = alerts.fired
    assert key == ALERT_KEY and severity == "critical"
    assert "cannot read new messages" in text and "ValueError" in text and "systemctl restart spbot" in todo
    await stuck.succeeded("save_sync_position")
    assert alerts.cleared == []
    await stuck.succeeded("device_lists")               # the step after the sync: the sync got through
    assert alerts.cleared == [(ALERT_KEY, "I read new messages again.")]


async def test_a_changing_failure_starts_counting_again(watch):
    stuck, clock, alerts = watch
    await fail_for(stuck, clock, STUCK_AFTER - 10, ValueError("one"))
    await fail_for(stuck, clock, STUCK_AFTER - 10, KeyError("another"))
    assert alerts.fired == []


@pytest.mark.parametrize("exc", [
    aiohttp.ClientConnectionError("refused"),               # the homeserver down: the outage's own
    ConnectionError("502 from the homeserver"),
    OSError(errno.ENOSPC, "No space left on device"),        # a full disk: spbot/cannot_write.py tells
    "damaged",                                               # damage: the bot stops (state_loss.py)
], ids=["unreachable", "refused", "disk full", "damaged"])
async def test_what_other_watchers_tell_is_not_told_here(watch, exc, tmp_path):
    stuck, clock, alerts = watch
    if exc == "damaged":
        exc = damage_met(tmp_path / "spbot.db")
    await fail_for(stuck, clock, 3 * STUCK_AFTER, exc)
    assert alerts.fired == []


async def test_other_steps_than_reading_are_not_watched(watch):
    stuck, clock, alerts = watch
    await fail_for(stuck, clock, 3 * STUCK_AFTER, ValueError("x"), step="save_sync_position")
    assert alerts.fired == []
