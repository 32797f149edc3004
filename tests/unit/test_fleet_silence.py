"""A silent peer's alert says how long the silence has lasted when it is posted: a reminder, or an alert
the quiet hours held, tells the duration of then, not the one of the moment it was raised. The real
fleet Watch and the real Alerts class on a real SQLite store; the bots' channel is a stand-in that hands
each claim back as the room would."""
from __future__ import annotations

import time
from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from spbot.config import FleetSettings
from spbot.features.fleet.watch import Watch
from spbot.features.fleet.wire import FleetEvent

from .test_alert_levels import alerts_for, store  # noqa: F401  (the fixture)


class Channel:
    """The bots' channel: what this bot sends comes back to it as the room's next event."""

    def __init__(self):
        self.me, self.peers = "nas", {"box": "@box:example.org"}
        self.watch: Watch | None = None
        self.count = 0

    async def send(self, room_id: str, kind: str, **content) -> bool:
        self.count += 1
        await self.watch.on_event(FleetEvent(f"$e{self.count}", room_id, self.me, kind, content, time.time()))
        return True


async def silent_for(store, hours: float, **alert_settings):  # noqa: F811
    alerts, posted = await alerts_for(store, **alert_settings)
    host = SimpleNamespace(store=store, alerts=alerts, admin_rooms=lambda: ["!fleet:example.org"])
    channel = Channel()
    watch = channel.watch = Watch(host, channel, FleetSettings.model_validate({"peers": channel.peers}))
    watch.ready = True
    watch.last_heard["box"] = time.time() - hours * 3600
    await watch.check()
    return watch, alerts, posted


def older(watch: Watch, hours: float) -> None:
    """The silence began `hours` earlier than it did (as if that much time had passed)."""
    watch.down["box"]["since"] -= hours * 3600


async def test_a_reminder_tells_how_long_the_silence_has_lasted(store):  # noqa: F811
    watch, alerts, posted = await silent_for(store, 1, warning={"renotify": "1s"})
    assert len(posted.replies) == 1 and "⚠️ box has not been heard from for 1h00m.\n" in posted.replies[0].body
    older(watch, 2)
    time.sleep(1.1)
    await watch.check()
    assert "⚠️ still: box has not been heard from for 3h00m.\n" in posted.replies[-1].body
    assert len(posted.replies) == 2


async def test_no_reminder_before_it_is_due(store):  # noqa: F811
    watch, alerts, posted = await silent_for(store, 1)
    older(watch, 2)
    await watch.check()
    await watch.check()
    assert len(posted.replies) == 1


async def test_an_alert_held_by_the_quiet_hours_is_released_with_the_silence_of_then(store):  # noqa: F811
    hour = datetime.now(ZoneInfo("Europe/Berlin")).hour           # the time zone alerts_for() sets
    quiet = f"{hour:02d}:00-{(hour + 2) % 24:02d}:00"                # now is inside them
    watch, alerts, posted = await silent_for(store, 1, quiet_hours=quiet)
    assert posted.replies == []
    older(watch, 5)
    await watch.check()
    assert await alerts.release(now=time.time() + 3 * 3600) == 1
    assert "⚠️ box has not been heard from for 6h00m.\n" in posted.replies[0].body
