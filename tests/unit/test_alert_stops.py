"""An alert or its recovery notice survives the bot being stopped between two of its steps, and is not
posted twice: the real Alerts on the real messenger, outbox and store (spbot/alerts.py, Outbox.send's
`once`). A stop is an exception raised at that step; the next start is a new Alerts on the same store."""
from __future__ import annotations

import json

import pytest

from spbot.alerts import Alerts
from spbot.outbox import Outbox

from .pipeline_kit import ALICE, BOB, CAROL, Parts, ROOM, Stopped

ADMINS = [ALICE, BOB, CAROL]
T0 = 1_800_000_000.0
HOUR = 3600.0


class StopAround:
    """The messenger, stopped before or after queueing the messages whose text has `marker`."""

    def __init__(self, messenger, marker: str, after: bool):
        self.messenger, self.marker, self.after = messenger, marker, after

    async def notify(self, reply, rooms=None, once=None):
        if self.marker not in reply.body:
            return await self.messenger.notify(reply, rooms, once=once)
        if self.after:
            await self.messenger.notify(reply, rooms, once=once)
        raise Stopped


async def started(parts: Parts, messenger=None) -> Alerts:
    alerts = Alerts(parts.store, messenger or parts.messenger, parts.config, spawn=parts.spawn)
    await alerts.start()
    return alerts


async def queued(parts: Parts, room: str = ROOM) -> list[str]:
    rows = await parts.store.fetchall("SELECT content FROM outbox WHERE room_id = ? ORDER BY id", (room,))
    return [json.loads(r["content"])["body"] for r in rows]


@pytest.mark.parametrize("after", [False, True], ids=["before queueing", "after queueing"])
async def test_a_recovery_cut_short_by_a_stop_is_posted_once_at_the_next_start(parts, after):
    """Before, clear() marked the alert inactive and then queued the notice: a stop in between lost it,
    and the admins were never told that /srv had room again."""
    alerts = await started(parts)
    await alerts.fire("disk:/srv", "warning", "/srv is 91% full", now=T0)
    alerts.messenger = StopAround(parts.messenger, "resolved", after)
    with pytest.raises(Stopped):
        await alerts.clear("disk:/srv", "/srv is 70% full", now=T0 + HOUR)

    again = await started(parts)                                  # the next start
    assert await again.clear("disk:/srv", "/srv is 70% full", now=T0 + 2 * HOUR) is False
    bodies = await queued(parts)
    assert [b for b in bodies if "resolved" in b] == [f"{' '.join(ADMINS)}: ✅ resolved: /srv is 70% full"]
    await started(parts)                                          # and once only
    assert await queued(parts) == bodies


async def test_an_alert_queued_just_before_a_stop_is_not_posted_again_by_the_next_check(parts):
    alerts = await started(parts, StopAround(parts.messenger, "full", after=True))
    with pytest.raises(Stopped):
        await alerts.fire("disk:/srv", "warning", "/srv is 91% full", now=T0)

    again = await started(parts)
    assert await again.fire("disk:/srv", "warning", "/srv is 91% full", now=T0 + 60) is True
    assert await again.fire("disk:/srv", "warning", "/srv is 91% full", now=T0 + 120) is False
    assert await queued(parts) == [f"{' '.join(ADMINS)}: ⚠️ /srv is 91% full"]
    await again.fire("disk:/srv", "warning", "/srv is 92% full", now=T0 + 25 * HOUR)   # due again: a reminder
    assert (await queued(parts))[1:] == [f"{' '.join(ADMINS)}: ⚠️ still: /srv is 92% full"]


@pytest.mark.parametrize("first, then", [("warning", "critical"), ("warning", "warning")],
                         ids=["worse", "back after clearing"])
async def test_an_alert_that_got_worse_or_came_back_just_before_a_stop_is_posted_by_the_next_check(
        parts, first, then):
    """Before, only a brand-new alert's row waited to be posted: an escalation (or an alert that came back
    within a day of its last post) stopped before it was queued looked told, and stayed silent."""
    alerts = await started(parts)
    await alerts.fire("disk:/srv", first, "/srv is 91% full", now=T0)
    if first == then:
        await alerts.clear("disk:/srv", "/srv is 70% full", now=T0 + 60)
    alerts.messenger = StopAround(parts.messenger, "99%", after=False)
    with pytest.raises(Stopped):
        await alerts.fire("disk:/srv", then, "/srv is 99% full", now=T0 + 120)

    again = await started(parts)
    assert await again.fire("disk:/srv", then, "/srv is 99% full", now=T0 + 180) is True
    icon = "🚨" if then == "critical" else "⚠️"
    assert (await queued(parts))[-1] == f"{' '.join(ADMINS)}: {icon} /srv is 99% full"


async def test_a_message_queued_twice_under_one_key_is_queued_once(parts):
    outbox: Outbox = parts.outbox
    first = await outbox.send(ROOM, {"msgtype": "m.text", "body": "one"}, once="k")
    assert await outbox.send(ROOM, {"msgtype": "m.text", "body": "one again"}, once="k") == first
    other = await outbox.send(ROOM, {"msgtype": "m.text", "body": "two"}, once="k2")
    plain = [await outbox.send(ROOM, {"msgtype": "m.text", "body": "plain"}) for _ in range(2)]
    assert len({first, other, *plain}) == 4
    assert await queued(parts) == ["one", "two", "plain", "plain"]
