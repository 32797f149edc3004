"""Telling watchers (hooks, listeners) that something happened: each is awaited in turn, and one that
raises is logged and passed over, so that a watcher's bug never stops the part that tells them (the
sync loop, the outbox, an alert being posted)."""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable

from .logs import get_logger

log = get_logger(__name__)


async def tell_each(watchers: Iterable[Callable[..., Awaitable[Any]]], *args: Any, failure: str) -> None:
    """Await `watcher(*args)` for each watcher; one that raises is logged as the event `failure`."""
    for watcher in list(watchers):
        try:
            await watcher(*args)
        except Exception:
            log.exception(failure, watcher=getattr(watcher, "__qualname__", type(watcher).__name__))
