"""The one scheduler of the bot (APScheduler 3, asyncio). Modules add their jobs in startup hooks;
scheduled work runs with the bot itself as requester."""
from __future__ import annotations

import time

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from .store import Store


def make_scheduler(timezone: str) -> AsyncIOScheduler:
    return AsyncIOScheduler(timezone=timezone, job_defaults={
        "coalesce": True, "max_instances": 1, "misfire_grace_time": 300})


def add_heartbeat(scheduler: AsyncIOScheduler, store: Store, seconds: int = 60) -> None:
    """Records that the scheduler is alive; watchdogs compare against it."""
    async def heartbeat() -> None:
        await store.put("scheduler_heartbeat", time.time())
    scheduler.add_job(heartbeat, "interval", seconds=seconds, id="heartbeat", name="heartbeat",
                      replace_existing=True)
