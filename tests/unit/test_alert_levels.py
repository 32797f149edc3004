"""[alerts]: severities decide who is mentioned (and so whose phone rings) and how often an alert repeats;
quiet hours hold non-critical alerts until they end. The real Alerts class on a real SQLite store; the
messenger is a stand-in that records what would be posted. Times are fixed UNIX times in UTC."""
from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from spbot.alerts import Alerts
from spbot.alerts_settings import AlertSettings
from spbot.render import Reply
from spbot.store import Store

from .pipeline_kit import Stopped

ADMINS = ["@alice:example.org", "@bob:example.org"]


def at(hour: int, minute: int = 0, day: int = 15) -> float:
    return datetime(2027, 1, day, hour, minute, tzinfo=timezone.utc).timestamp()


class Posted:
    """The messenger's notify(), recorded."""

    def __init__(self):
        self.replies: list[Reply] = []

    async def notify(self, reply: Reply, rooms=None, once=None) -> list[int]:
        self.replies.append(reply)
        return [len(self.replies)]


@pytest.fixture
async def store(tmp_path):
    store = await Store(tmp_path / "spbot.db").open()
    yield store
    await store.close()


async def alerts_for(store: Store, **settings) -> tuple[Alerts, Posted]:
    posted = Posted()
    validated = AlertSettings.model_validate(settings)
    config = SimpleNamespace(admins=ADMINS, timezone="Europe/Berlin", settings=lambda name: validated)
    alerts = Alerts(store, posted, config, spawn=lambda coro, name: coro.close())
    await alerts.start()
    return alerts, posted


async def test_by_default_warning_and_critical_ring_every_admin_and_info_rings_nobody(store):
    alerts, posted = await alerts_for(store)
    await alerts.fire("a", "warning", "disk filling", now=at(12))
    await alerts.fire("b", "critical", "disk full", now=at(12))
    await alerts.fire("c", "info", "a new kernel is installed", now=at(12))
    warning, critical, info = posted.replies
    assert warning.mentions == ADMINS and warning.content()["msgtype"] == "m.text"
    assert critical.content()["m.mentions"] == {"user_ids": ADMINS}
    assert info.mentions == [] and info.content()["msgtype"] == "m.notice"
    assert info.body == "ℹ️ a new kernel is installed"
    await alerts.clear("a", "disk has room again", now=at(13))
    await alerts.clear("c", "kernel running", now=at(13))
    ring, quiet = posted.replies[3:]
    assert ring.mentions == ADMINS and ring.content()["msgtype"] == "m.text", "the recovery of an alert that rang"
    assert quiet.mentions == [] and quiet.content()["msgtype"] == "m.notice"


async def test_mention_and_renotify_per_severity(store):
    alerts, posted = await alerts_for(store, warning={"mention": "none", "renotify": "1h"},
                                      info={"mention": "admins"})
    await alerts.fire("w", "warning", "disk filling", renotify=86400, now=at(12))
    assert posted.replies[0].mentions == [] and posted.replies[0].content()["msgtype"] == "m.notice"
    await alerts.fire("w", "warning", "disk filling", renotify=86400, now=at(12, 59))
    assert len(posted.replies) == 1
    await alerts.fire("w", "warning", "disk filling", renotify=86400, now=at(13, 1))   # [alerts] wins: 1 h
    assert posted.replies[1].body == "⚠️ still: disk filling"
    await alerts.fire("i", "info", "fyi", to=[ADMINS[1]], now=at(13))
    assert posted.replies[2].mentions == [ADMINS[1]], "`to` still narrows who is mentioned"


async def test_quiet_hours_hold_warnings_until_they_end_and_critical_goes_out_at_once(store, tmp_path):
    # 22:00-07:00 Berlin is 21:00-06:00 UTC in January
    alerts, posted = await alerts_for(store, quiet_hours="22:00-07:00")
    assert not await alerts.fire("w", "warning", "disk filling", offer="!cleanup run", now=at(23))
    assert await alerts.fire("c", "critical", "disk full", now=at(23, 5))
    assert [r.body.split(": ", 1)[1] for r in posted.replies] == ["🚨 disk full"]
    assert not await alerts.fire("w", "warning", "disk filling more", offer="!cleanup run", now=at(23, 30))
    assert await alerts.release(now=at(5, 59, day=16)) == 0                       # still quiet
    assert len(posted.replies) == 1

    restarted, posted_again = await alerts_for(store, quiet_hours="22:00-07:00")  # held across a restart
    assert await restarted.release(now=at(6, 0, day=16)) == 1
    [morning] = posted_again.replies
    assert morning.body.startswith(" ".join(ADMINS) + ": ⚠️ disk filling more")
    assert "react ✅ to this message to run !cleanup run" in morning.body and morning.ring
    assert await restarted.release(now=at(6, 5, day=16)) == 0                    # once
    await restarted.fire("w", "warning", "disk filling more", now=at(6, 10, day=16))
    assert len(posted_again.replies) == 1, "posted at the end of the quiet hours counts as notified"


async def test_a_held_alert_that_clears_before_morning_is_never_posted(store):
    alerts, posted = await alerts_for(store, quiet_hours="22:00-07:00")
    await alerts.fire("w", "warning", "disk filling", now=at(23))
    assert await alerts.clear("w", "disk has room again", now=at(23, 30))
    assert await alerts.release(now=at(7, day=16)) == 0
    assert posted.replies == []


async def test_escalation_during_quiet_hours_goes_out_and_recoveries_at_night_do_not_ring(store):
    alerts, posted = await alerts_for(store, quiet_hours="22:00-07:00")
    await alerts.fire("d", "warning", "disk filling", now=at(20))               # before the quiet hours
    await alerts.fire("d", "critical", "disk full", now=at(23))                 # worse: out at once
    assert [r.body.split(": ", 1)[1] for r in posted.replies] == ["⚠️ disk filling", "🚨 disk full"]
    await alerts.fire("n", "warning", "certificate expires soon", now=at(19))
    await alerts.clear("n", "certificate renewed", now=at(23, 30))
    assert posted.replies[-1].body == "✅ resolved: certificate renewed" and not posted.replies[-1].mentions
    await alerts.clear("d", "disk has room", now=at(23, 40))
    assert posted.replies[-1].mentions == ADMINS, "a critical alert's recovery rings even at night"


def test_quiet_hours_are_checked_when_the_config_is_read():
    for wrong in ("22-07", "25:00-07:00", "07:00-07:00"):
        with pytest.raises(ValidationError):
            AlertSettings(quiet_hours=wrong)
    with pytest.raises(ValidationError):
        AlertSettings.model_validate({"warning": {"mention": "everyone"}})
    quiet = AlertSettings(quiet_hours="09:00-17:30").quiet("UTC")
    assert quiet.contains(at(9)) and quiet.contains(at(17, 29)) and not quiet.contains(at(17, 30))
    assert quiet.ends_after(at(12)) == at(17, 30) and quiet.ends_after(at(18)) == at(18)


async def test_an_alert_the_bot_was_stopped_before_posting_is_posted_at_the_next_check(store):
    """The alert's row is written before it is posted: a kill in between left it looking notified, and
    the next checks stayed silent until it was due again (a day for a warning)."""
    alerts, posted = await alerts_for(store)

    async def killed(reply, rooms=None, once=None):
        raise Stopped
    alerts.messenger = SimpleNamespace(notify=killed)
    with pytest.raises(Stopped):
        await alerts.fire("disk:/srv", "warning", "/srv is 91% full", now=at(12))
    alerts.messenger = posted                      # the next start, the next check
    assert await alerts.fire("disk:/srv", "warning", "/srv is 91% full", now=at(12, 5)) is True
    assert [r.body for r in posted.replies] == [f"{' '.join(ADMINS)}: ⚠️ /srv is 91% full"]
    assert await alerts.fire("disk:/srv", "warning", "/srv is 91% full", now=at(12, 10)) is False
