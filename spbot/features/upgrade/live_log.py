"""The package tool's output as the job's progress: the last lines and a step guessed from them, and
the guard that lets an admin's !cancel stop the work only before the system is being changed."""
from __future__ import annotations

import asyncio
import re
from collections import deque
from typing import TYPE_CHECKING, Any, Awaitable

from spbot.logs import get_logger

if TYPE_CHECKING:
    from spbot.jobs import Job

log = get_logger(__name__)


_STEPS = (
    (re.compile(r"^(Hit|Get|Ign|Err):\d+ "), "refreshing the package lists"),
    (re.compile(r"^Unpacking (\S+)"), "installing {}"),
    (re.compile(r"^Setting up (\S+)"), "configuring {}"),
    (re.compile(r"^Removing (\S+)"), "removing {}"),
    (re.compile(r"^Processing triggers"), "finishing (triggers)"),
    (re.compile(r"^(unpacking channels|building Nix)"), "updating the channels"),
    (re.compile(r"^building the system configuration"), "building the new system"),
    (re.compile(r"^(stopping the following units|activating the configuration)"), "switching to it"),
)
# From these lines on, the system is being changed: stopping now would leave it half-changed.
_POINT_OF_NO_RETURN = re.compile(
    r"^(Preconfiguring packages|\(Reading database|Preparing to unpack|Unpacking |Setting up |Removing "
    r"|switching profile from version|stopping the following units|activating the configuration)")


class LiveLog:
    """The tool's output as the job's progress: the last lines and a step guessed from them.

    `job.progress` only stores and schedules a rate-limited edit, so calling it per line is cheap.
    """

    def __init__(self, job: "Job | None", step: str, lines: int = 12):
        self.job = job
        self.step = step
        self.lines: deque[str] = deque(maxlen=lines)
        self.changing = False
        self.note = ""                              # stays beside every later step

    async def __call__(self, line: str) -> None:
        self.lines.append(line)
        self.changing = self.changing or bool(_POINT_OF_NO_RETURN.match(line))
        for pattern, label in _STEPS:
            if match := pattern.match(line):
                self.step = label.format(match[1]) if "{}" in label else label
                break
        await self.show(self.step)

    async def show(self, step: str, lines: list[str] | None = None) -> None:
        self.step = step
        if self.job is not None:
            await self.job.progress(step + self.note,
                                    lines=lines if lines is not None else list(self.lines))


async def guarded(live: LiveLog, work: Awaitable[Any]) -> Any:
    """Run `work`; an admin's !cancel stops it only while nothing has been changed yet.

    Once dpkg or the activation has started, the cancel is noted and the work finishes first. A bot
    shutdown (no canceller) still cancels: systemd would kill the process tree anyway.
    """
    task = asyncio.ensure_future(work)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            job = live.job
            if task.done() or job is None or job.cancelled_by is None or not live.changing:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise
            asyncio.current_task().uncancel()    # the cancel is handled: later awaits are not cancelled
            log.warning("cancel_deferred", job=job.id, by=job.cancelled_by)
            live.note = (f" · cannot stop now (asked by {job.cancelled_by}): the system is being "
                         "changed, finishing first")
            await live.show(live.step)
