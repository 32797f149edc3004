"""What the server feature reports after a restart (a reboot it asked for, a volume growth a stop cut
short): the mark stored before the work is read, the outcome found out and answered to the command
that asked for it, and the mark dropped. The provider's network may not be up yet on a freshly booted
machine, so finding out is tried a few times."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from spbot.providers.errors import ProviderError

from ...context import Request, UserError
from ...logs import get_logger
from ...render import Reply

log = get_logger(__name__)

REPORT_ATTEMPTS = 6
REPORT_RETRY_WAIT = 10.0  # seconds between tries after a restart
Mark = dict[str, Any]


async def report_after_restart(host: Any, what: str, read_mark: Callable[[Any], Awaitable[Mark | None]],
                               forget_mark: Callable[[Any], Awaitable[None]],
                               outcome: Callable[[Mark], Awaitable[Reply]],
                               unknown: Callable[[Mark, Exception], Reply], notes: Sequence[str] = (),
                               retry_wait: float = REPORT_RETRY_WAIT) -> None:
    mark = await read_mark(host.store)
    if not mark:
        return
    for attempt in range(1, REPORT_ATTEMPTS + 1):
        try:
            reply = await outcome(mark)
            break
        except (UserError, ProviderError) as exc:
            log.info(f"{what}_report_retry", attempt=attempt, reason=exc.what[:200])
            reply = unknown(mark, exc)
            if attempt < REPORT_ATTEMPTS:
                await asyncio.sleep(retry_wait)
    if notes:
        reply += Reply.text("\n".join(notes))
    await host.jobs.told.wait()          # "the job ended when the bot stopped" comes first
    await host.send_reply(Request(mark["requester"], "", mark["room_id"], mark["event_id"], "", 0), reply)
    await forget_mark(host.store)
    log.info(f"{what}_reported_after_restart", job=mark["job_id"])
