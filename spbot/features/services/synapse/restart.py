"""After the homeserver that carries the chat restarts: wait until the bot's own connection is back (its
`online` event, spbot/matrix.py) and say how long it took."""
from __future__ import annotations

import asyncio

DROP_WAIT = 15.0        # how long the connection may take to notice the homeserver went away
BACK_WAIT = 600.0       # how long to wait for it to come back before saying so


async def back_after(connection, started: float, drop_wait: float = DROP_WAIT,
                     back_wait: float = BACK_WAIT) -> float | None:
    """Seconds from `started` (loop time) until the connection is online again after the restart; None
    when it is not back within `back_wait`. A restart quicker than the connection noticed counts as back."""
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(connection.offline.wait(), drop_wait)
    except asyncio.TimeoutError:
        pass
    try:
        await asyncio.wait_for(connection.online.wait(), back_wait)
    except asyncio.TimeoutError:
        return None
    return loop.time() - started
