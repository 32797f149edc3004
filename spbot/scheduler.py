"""The one scheduler of the bot (APScheduler 3, asyncio). Modules add their jobs in startup hooks;
scheduled work runs with the bot itself as requester."""
from __future__ import annotations

import importlib.metadata
import re
import time
from contextlib import contextmanager

from .store import Store


@contextmanager
def _own_plugins_only():
    """APScheduler reads the entry points of every installed package at import, looking for third-party
    triggers, executors and job stores (~10 ms beside 160 packages). The bot uses only APScheduler's
    own, so the lookup is given APScheduler's distribution alone."""
    own = importlib.metadata.distribution("APScheduler").entry_points
    every_package = importlib.metadata.entry_points
    importlib.metadata.entry_points = lambda **selection: own.select(**selection)
    try:
        yield
    finally:
        importlib.metadata.entry_points = every_package


with _own_plugins_only():
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger  # noqa: E402


def make_scheduler(timezone: str) -> AsyncIOScheduler:
    return AsyncIOScheduler(timezone=timezone, job_defaults={
        "coalesce": True, "max_instances": 1, "misfire_grace_time": 300})


def add_heartbeat(scheduler: AsyncIOScheduler, store: Store, seconds: int = 60) -> None:
    """Records that the scheduler is alive; watchdogs compare against it."""
    async def heartbeat() -> None:
        await store.put("scheduler_heartbeat", time.time())
    scheduler.add_job(heartbeat, "interval", seconds=seconds, id="heartbeat", name="heartbeat",
                      replace_existing=True)


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def cron_trigger(expr: str, timezone: str | None = None) -> CronTrigger:
    """A crontab line ("0 4 * * 0" = Sundays 04:00), optionally with a leading seconds field.

    APScheduler 3 counts weekdays from Monday=0, crontab from Sunday=0: numbers are translated."""
    fields = expr.split()
    if len(fields) not in (5, 6):
        raise ValueError('expected a crontab line such as "0 4 * * 0" (minute hour day month weekday), '
                         "optionally with seconds first")
    second = fields.pop(0) if len(fields) == 6 else "0"
    minute, hour, day, month, weekday = fields
    try:
        return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month,
                           day_of_week=_crontab_weekdays(weekday), timezone=timezone)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"not a valid schedule: {exc}") from None


def _crontab_weekdays(field: str) -> str:
    """Crontab weekday numbers (0 or 7 = Sunday) as names: '1-5' -> 'mon,tue,wed,thu,fri'."""
    if not re.search(r"\d", field):
        return field
    days: list[str] = []
    for part in field.split(","):
        span, _, step = part.partition("/")
        if span == "*":
            span = "0-6"
        if not re.fullmatch(r"\d+(-\d+)?", span):
            days.append(part)                       # names like mon-fri pass through
            continue
        first, _, last = span.partition("-")
        numbers = range(int(first), int(last or (6 if step else first)) + 1, int(step or 1))
        if any(n > 7 for n in numbers):
            raise ValueError(f"weekday {part!r} is out of range (0-7, 0 and 7 are Sunday)")
        days += [_WEEKDAYS[n % 7] for n in numbers]
    return ",".join(dict.fromkeys(days))
