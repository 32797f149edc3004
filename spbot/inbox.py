"""How far the bot got with each incoming event, kept in SQLite, so that no command or vote is lost and
none is acted on twice, across kills, restarts and storage errors.

The sync position is saved only after a batch was handled (spbot/matrix.py), so an event whose
handling was cut short comes back. The event filter claims an event (seen_events) before it looks
further, so a claim alone cannot tell "done" from "cut short"; this table can:

    arrived   written before the filter claims the event; nothing has acted on it yet
    accepted  a command passed every check and is about to run
    started   its run began (it may have done something)
    waiting   an undecryptable command waits for its room key
    (no row)  done: answered, run, or dropped on purpose

An event that comes back while `arrived` and claimed is handled afresh (the claim is undone: nothing
acted on it). One that comes back `accepted` or `started` is never run again. At start, commands left
`accepted` by the previous run are answered "nothing ran, send it again"; those left `started` are
answered "I was stopped while acting on this" unless a reply, a job or an approval request shows that
they got through."""
from __future__ import annotations

import time
from typing import Awaitable, Callable

from .logs import get_logger
from .render import Reply
from .store import Store

log = get_logger(__name__)

NOTHING_RAN = Reply.error("I was stopped before I could act on this; nothing ran — send it again.")
MAY_HAVE_RUN = Reply.error(
    "I was stopped while acting on this, before I could answer; it may have run in part.",
    "Check what it did (!status, !jobs) before sending it again.")
FAILED_WHILE_RUNNING = Reply.error(
    "Something went wrong on my side (my state store) while acting on this; it may have run in part.",
    "Check what it did (!status, !jobs) before sending it again.")


class Inbox:
    def __init__(self, store: Store):
        self.store = store

    async def start(self) -> None:
        await self.store.open_inbox()

    async def begin(self, event_id: str, room_id: str, sender: str, kind: str,
                    redo: Callable[[], Awaitable[bool]] | None = None) -> bool:
        """Before the filter sees the event: False if it is already under way (never act twice).
        `redo` decides whether an event claimed by an attempt that was cut short may be tried again."""
        row = await self.store.inbox_row(event_id)
        if row is None or row["state"] == "waiting":        # new, or decryptable at last
            await self.store.inbox_set(event_id, room_id, sender, kind, "arrived", time.time())
            return True
        if row["state"] != "arrived":
            return False
        if await self.store.is_claimed(event_id):
            if redo is not None and not await redo():
                log.warning("event_cut_short", event_id=event_id, kind=kind)
                await self.store.inbox_done(event_id)
                return False
            log.info("event_retried", event_id=event_id, kind=kind)
            await self.store.unclaim_event(event_id)
        return True

    async def set(self, event_id: str, room_id: str, sender: str, kind: str, state: str) -> None:
        await self.store.inbox_set(event_id, room_id, sender, kind, state, time.time())

    async def state(self, event_id: str) -> str | None:
        row = await self.store.inbox_row(event_id)
        return row["state"] if row else None

    async def finish_if_arrived(self, event_id: str) -> None:
        """The filter dropped or answered the event: nothing more is owed."""
        if await self.state(event_id) == "arrived":
            await self.store.inbox_done(event_id)

    async def done(self, event_id: str) -> None:
        await self.store.inbox_done(event_id)

    async def waiting(self) -> list:
        return await self.store.inbox_rows(["waiting"])

    async def recover(self, send: Callable[[str, str, Reply], Awaitable[object]],
                      got_through: Callable[[str], Awaitable[bool]]) -> dict[str, int]:
        """Answer the commands the previous run left unfinished; returns counts by state."""
        counts = {"accepted": 0, "started": 0}
        for row in await self.store.inbox_rows(["accepted", "started"]):
            event_id, state = row["event_id"], row["state"]
            if state == "accepted" or not await got_through(event_id):
                await send(row["room_id"], event_id, NOTHING_RAN if state == "accepted" else MAY_HAVE_RUN)
                counts[state] += 1
                log.warning("command_cut_short", event_id=event_id, sender=row["sender"], state=state)
            await self.store.inbox_done(event_id)
        return counts

    async def leftovers(self) -> list:
        """Rows still `arrived` once the first batch after a start was handled (it would have
        brought them back): the event never returned, so it is answered rather than forgotten."""
        return await self.store.inbox_rows(["arrived"])

    async def finish_if_waiting(self, event_id: str) -> None:
        if await self.state(event_id) == "waiting":
            await self.store.inbox_done(event_id)
