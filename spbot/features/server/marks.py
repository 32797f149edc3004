"""What the server feature keeps in the bot's store: the mark of a reboot in flight (so the bot
that the reboot restarted can report how it ended) and the server type a resize approval request
showed (so the resize refuses a stale plan)."""
from __future__ import annotations

import time
from typing import Any

REBOOT_KEY = "hetzner:reboot"
RESIZE_SHOWN_KEY = "hetzner:resize-shown:"


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
