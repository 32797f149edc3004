"""An admin takes the bot's right to post in the admin room (room settings → Roles & Permissions): the
homeserver refuses its messages for good. Before, they were dropped, an alert among them, and nobody was
told. Now each one is sent to every admin in a direct message, with what went wrong and how to fix it."""
from __future__ import annotations

import time
import uuid

import pytest

from spbot.devstack import PlainSession

from .conftest import PASSWORD
from .test_room_upgrade import invitation_from

pytestmark = pytest.mark.matrix


async def test_an_alert_the_admin_room_refuses_reaches_the_admins_directly(make_bot, alice, synapse):
    bot = await make_bot("refused")
    session = PlainSession.login(synapse.url, alice.user_id, PASSWORD)      # "Send messages": moderators
    path = f"/_matrix/client/v3/rooms/{bot.room_id}/state/m.room.power_levels"
    levels = session.http.get(path).json()
    levels["events_default"] = 50
    session.http.put(path, json=levels).raise_for_status()
    session.logout()

    token = uuid.uuid4().hex[:8]
    since = time.monotonic()
    await alice.send(bot.room_id, f"!alert-offer {token}")
    direct = await invitation_from(alice, bot.user_id)
    forwarded = await alice.wait_for(lambda e: e.sender == bot.user_id and e.received > since
                                     and f"test condition {token}" in e.body, timeout=60)
    assert forwarded.room_id == direct
    assert forwarded.body.startswith(f"⚠️ I could not post this in the admin room {bot.room_id}: the "
                                     "homeserver refused it (M_FORBIDDEN"), forwarded.body
    assert "Roles & Permissions" in forwarded.body
    assert not [e for e in alice.events if e.room_id == bot.room_id and f"test condition {token}" in e.body]
