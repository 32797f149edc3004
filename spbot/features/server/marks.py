"""What the server feature keeps in the bot's store: the mark of a reboot in flight (so the bot
that the reboot restarted can report how it ended), the server type a resize approval request
showed (so the resize refuses a stale plan), and the same two for a volume's growth: the sizes its
request showed (a twin request does not grow it twice) and the growth in flight (a stop between the
provider's growth and the filesystem's is finished at the next start), and the resize in flight (a stop
while the server is off for it is finished at the next start: the server is powered on again)."""
from __future__ import annotations

import time
from typing import Any

REBOOT_KEY = "hetzner:reboot"
RESIZE_SHOWN_KEY = "hetzner:resize-shown:"
GROWTH_KEY = "hetzner:volume-growth"
GROWTH_SHOWN_KEY = "hetzner:growth-shown:"
RESIZE_KEY = "hetzner:resize"


async def remember_reboot(store: Any, **mark: Any) -> None:
    current = await store.get(REBOOT_KEY) or {}
    await store.put(REBOOT_KEY, {**current, **mark})


async def reboot_mark(store: Any) -> dict[str, Any] | None:
    return await store.get(REBOOT_KEY)


async def forget_reboot(store: Any) -> None:
    await store.put(REBOOT_KEY, None)


async def remember_shown_type(store: Any, new_type: str, current: str) -> None:
    """The server type the approval request showed, so the resize refuses a stale plan."""
    await store.put(RESIZE_SHOWN_KEY + new_type, {"current": current, "at": time.time()})


async def shown_type(store: Any, new_type: str, approval_expiry: float) -> str | None:
    shown = await store.get(RESIZE_SHOWN_KEY + new_type)
    if not shown or time.time() - shown["at"] > approval_expiry + 60:
        return None
    return shown["current"]


async def remember_shown_growth(store: Any, mount: str, size: str, volume: str, current: int, new: int) -> None:
    """The sizes the approval request of `!volume grow <mount> <size>` showed."""
    await store.put(GROWTH_SHOWN_KEY + f"{mount}|{size}",
                    {"volume": volume, "current": current, "new": new, "at": time.time()})


async def shown_growth(store: Any, mount: str, size: str, approval_expiry: float) -> dict[str, Any] | None:
    shown = await store.get(GROWTH_SHOWN_KEY + f"{mount}|{size}")
    if not shown or time.time() - shown["at"] > approval_expiry + 60:
        return None
    return shown


class InFlight:
    """The mark of one piece of work in flight, under its key: stored before it starts, read at the
    next start, dropped when it is done or reported."""

    def __init__(self, key: str):
        self.key = key

    async def remember(self, store: Any, **mark: Any) -> None:
        await store.put(self.key, mark)

    async def read(self, store: Any) -> dict[str, Any] | None:
        return await store.get(self.key)

    async def forget(self, store: Any) -> None:
        await store.put(self.key, None)


GROWTH, RESIZE = InFlight(GROWTH_KEY), InFlight(RESIZE_KEY)
remember_growth, growth_mark, forget_growth = GROWTH.remember, GROWTH.read, GROWTH.forget
remember_resize, resize_mark, forget_resize = RESIZE.remember, RESIZE.read, RESIZE.forget
