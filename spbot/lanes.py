"""A fair share of the bot for each sender: every admin's commands go through their own lane, a small
queue with a concurrency limit, so one client flooding the bot delays only its own commands and never
another admin's.

A lane admits every command; past `warn_at` waiting it says once "slow down" (the commands still run, in
order); past `limit` waiting it refuses what comes in until the lane is shorter again, and says so once
per burst (each refused command is audited by the dispatcher). Nothing is dropped without a word.
Commands sent while the bot was down (the backlog of an outage) queue the same way but are never
refused: they are not a flood, they are what the admin asked for while it could not answer."""
from __future__ import annotations

import asyncio
import enum
from contextlib import asynccontextmanager
from typing import AsyncIterator


class Admission(enum.Enum):
    RUN = "run"
    RUN_AND_WARN = "run, and say once to slow down"
    REFUSE_AND_SAY = "refuse, and say why"
    REFUSE = "refuse (already said for this burst)"


class Lane:
    def __init__(self, concurrent: int, warn_at: int, limit: int):
        self._slots = asyncio.Semaphore(concurrent)
        self.warn_at, self.limit = warn_at, limit
        self.waiting = 0          # admitted, not yet running
        self.running = 0
        self._warned = False
        self._refusal_said = False

    def admit(self, backlog: bool = False) -> Admission:
        """`backlog`: a command sent while the bot was not running (after an outage), not by a client
        flooding now; it queues like the others but is never refused or told to slow down."""
        if backlog:
            return Admission.RUN
        if self.waiting >= self.limit:
            if self._refusal_said:
                return Admission.REFUSE
            self._refusal_said = True
            return Admission.REFUSE_AND_SAY
        self._refusal_said = False
        if self.waiting >= self.warn_at and not self._warned:
            self._warned = True
            return Admission.RUN_AND_WARN
        return Admission.RUN

    @property
    def idle(self) -> bool:
        return self.waiting == 0 and self.running == 0

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for this lane's next free slot (first come, first served), then hold it."""
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()
            if self.idle:
                self._warned = False


class SenderLanes:
    """One lane per sender, made on first use and forgotten when idle."""

    def __init__(self, concurrent: int = 2, warn_at: int = 5, limit: int = 50):
        self.concurrent, self.warn_at, self.limit = concurrent, warn_at, limit
        self._lanes: dict[str, Lane] = {}

    def lane(self, sender: str) -> Lane:
        lane = self._lanes.get(sender)
        if lane is None:
            lane = self._lanes[sender] = Lane(self.concurrent, self.warn_at, self.limit)
        return lane

    def forget_if_idle(self, sender: str) -> None:
        lane = self._lanes.get(sender)
        if lane is not None and lane.idle:
            del self._lanes[sender]
