"""Which errors mean the homeserver did not answer: the sync loop counts itself offline on them
(spbot/matrix.py), and the watchers of its steps leave them to it (spbot/stuck_reading.py)."""
from __future__ import annotations

import asyncio

from aiohttp import ClientError
from nio import LocalProtocolError

from .cannot_write import cannot_write
from .timeline import HistoryUnreadable

NETWORK_ERRORS = (ClientError, asyncio.TimeoutError, TimeoutError, OSError)


def offline(exc: BaseException) -> bool:
    """No answer, or an answer the bot wraps as a ConnectionError (spbot/timeline.py, know_devices); a full
    disk is an OSError too, but not the homeserver's."""
    return isinstance(exc, (*NETWORK_ERRORS, ConnectionError, LocalProtocolError, HistoryUnreadable)) \
        and not cannot_write(exc)
