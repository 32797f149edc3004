"""A watcher that raises is logged and passed over: the others are still told, and the part that tells
them goes on (spbot/watchers.py, used by the sync loop, the outbox and the alerts)."""
from __future__ import annotations

import asyncio
import logging

from spbot.watchers import tell_each


def test_a_raising_watcher_is_logged_and_the_next_is_still_told(caplog):
    told = []

    async def first(what):
        told.append(("first", what))

    async def broken(what):
        raise RuntimeError("the watcher's own bug")

    async def last(what):
        told.append(("last", what))

    with caplog.at_level(logging.ERROR):
        asyncio.run(tell_each([first, broken, last], "x", failure="test_watcher_failed"))
    assert told == [("first", "x"), ("last", "x")]
    assert "test_watcher_failed" in caplog.text and "broken" in caplog.text
    assert "the watcher's own bug" in caplog.text           # the traceback is in the log


def test_cancellation_is_not_swallowed():
    async def cancelled(_):
        raise asyncio.CancelledError

    async def main():
        try:
            await tell_each([cancelled], 1, failure="test_watcher_failed")
        except asyncio.CancelledError:
            return "cancelled"
        return "swallowed"

    assert asyncio.run(main()) == "cancelled"


def test_a_watcher_added_while_telling_waits_for_the_next_time():
    watchers, told = [], []

    async def adder(what):
        watchers.append(late)
        told.append("adder")

    async def late(what):
        told.append("late")

    watchers.append(adder)
    asyncio.run(tell_each(watchers, 1, failure="test_watcher_failed"))
    assert told == ["adder"]
