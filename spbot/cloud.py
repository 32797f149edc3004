"""Transitional: the disk alerts (spbot/diskwatch.py, another helper's file) still import
`grow_offer` from here. Delete this module once they call
`host.feature(ServerFeature).grow_offer(mount)` (spbot/features/server/)."""
from __future__ import annotations

from typing import Any

from .features.server import ServerFeature
from .features.server.offer import GrowOffer


async def grow_offer(bot: Any, mount: str) -> GrowOffer | None:
    return await bot.feature(ServerFeature).grow_offer(mount)
