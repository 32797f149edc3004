"""An accepted command runs beside the sync loop, and the inbox (spbot/inbox.py) records how far it got:
accepted, started, done. So a command whose run never started, or never finished (the bot was killed),
is answered at the next start instead of being lost, and nothing runs twice."""
from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any, Awaitable, Callable

from .config import Config
from .inbox import FAILED_WHILE_RUNNING, NOTHING_RAN, Inbox
from .logs import get_logger
from .messenger import Messenger
from .request import Request
from .store import Store

log = get_logger(__name__)


class AcceptedCommands:
    def __init__(self, inbox: Inbox, store: Store, messenger: Messenger, config: Config,
                 handle: Callable[[Request], Awaitable[None]], spawn: Callable[[Awaitable[Any], str], Any]):
        """`handle`: the dispatcher's step for an accepted request."""
        self.inbox = inbox
        self.store = store
        self.messenger = messenger
        self.config = config
        self.handle = handle
        self.spawn = spawn

    async def start(self, request: Request) -> None:
        """Run an accepted command beside the sync loop. Recorded first, so that a command whose run
        never started (the bot was killed) is answered at the next start instead of being lost."""
        await self.inbox.set(request.event_id, request.room_id, request.sender, "command", "accepted")
        self.spawn(self._run(request), name=f"command {request.event_id}")

    async def _run(self, request: Request) -> None:
        event_id = request.event_id
        await until_stored(lambda: self.inbox.set(event_id, request.room_id, request.sender, "command",
                                                  "started"))
        try:
            await self.handle(request)
        except asyncio.CancelledError:
            raise                               # stopping: the next start answers it
        except Exception:
            log.exception("command_handling_failed", event_id=event_id)
            await until_stored(lambda: self.messenger.reply(request, FAILED_WHILE_RUNNING))
        await until_stored(lambda: self.inbox.done(event_id))

    async def recover(self) -> list:
        """At start: commands the previous run accepted or started but never finished get an answer;
        returns the commands still waiting for their room key (to fetch again)."""
        counts = await self.inbox.recover(self.messenger.reply_to, self._got_through)
        if any(counts.values()):
            log.warning("unfinished_commands_answered", **counts)
        return await self.inbox.waiting()

    async def _got_through(self, event_id: str) -> bool:
        """Whether a started command left a trace that answers it: a job (reported by the job
        runner), an approval request, or a reply of its own."""
        for sql in ("SELECT 1 FROM jobs WHERE event_id = ?", "SELECT 1 FROM requests WHERE event_id = ?",
                    "SELECT 1 FROM outbox WHERE instr(content, ?) > 0"):
            param = event_id if "instr" not in sql else f'"m.in_reply_to": {{"event_id": "{event_id}"}}'
            if await self.store.fetchone(sql, (param,)) is not None:
                return True
        return False

    async def answer_leftovers(self) -> list:
        """After the first batch since start: an event still `arrived` did not come back with it (it was
        being handled outside a batch, decrypted late, when the bot stopped). A command is answered; the
        votes are returned, to be fetched again by id (a vote counts once however often it comes)."""
        votes = []
        for row in await self.inbox.leftovers():
            if row["kind"] == "reaction":
                votes.append(row)
                continue
            await self.store.claim_event(row["event_id"], row["room_id"], time.time())
            if row["kind"] == "command" and row["sender"] in self.config.admins:
                await self.messenger.reply_to(row["room_id"], row["event_id"], NOTHING_RAN)
            log.warning("event_never_returned", event_id=row["event_id"], kind=row["kind"])
            await self.inbox.done(row["event_id"])
        return votes


async def until_stored(work: Callable[[], Awaitable[Any]]) -> Any:
    """A step that must reach the state store: waits out a storage error (1 s doubling to 30 s)."""
    backoff = 1.0
    while True:
        try:
            return await work()
        except (sqlite3.Error, OSError) as exc:
            log.warning("store_unavailable", error=exc.__class__.__name__, detail=str(exc)[:200],
                        retry_in=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
