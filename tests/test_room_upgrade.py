"""An admin upgrades the admin room (Element: room settings → Advanced → Upgrade): the homeserver makes a
new room and leaves a tombstone in the old one (now read-only), and Element shows only the new one. The
bot follows: it asks the admin who upgraded, in a direct message, to invite it (the new room is
invite-only, as the old one was), joins on the invitation, says in the new room that it listens there, answers commands there, and posts its alerts
there, not in the old room nobody sees any more. Before, it kept to the old room: the family's commands
in the new room went unanswered and its alerts rang nowhere anyone looked."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from spbot.devstack import PlainSession

from .conftest import PASSWORD

pytestmark = pytest.mark.matrix


def upgrade(synapse, room_id: str, user_id: str) -> str:
    """What Element's "Upgrade this room" does first: the homeserver's upgrade (a new room, a tombstone)."""
    session = PlainSession.login(synapse.url, user_id, PASSWORD)
    try:
        answer = session.http.post(f"/_matrix/client/v3/rooms/{room_id}/upgrade", json={"new_version": "10"})
        assert answer.status_code == 200, answer.text
        return answer.json()["replacement_room"]
    finally:
        session.logout()


async def invitation_from(client, inviter: str, timeout: float = 60) -> str:
    """Accept the room `inviter` invites the client to (a direct message); its id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for room_id, room in list(client.client.invited_rooms.items()):
            if room.inviter == inviter:
                await client.join(room_id)
                await client.wait_joined(room_id, client.user_id)
                return room_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"no invitation from {inviter}")


async def test_the_bot_follows_an_upgraded_admin_room(make_bot, alice, synapse):
    bot = await make_bot("room-upgrade")
    old = bot.room_id
    since = time.monotonic()
    new = upgrade(synapse, old, alice.user_id)
    direct = await invitation_from(alice, bot.user_id)
    asked = await alice.wait_for(lambda e: e.sender == bot.user_id and e.received > since
                                 and f"You upgraded the admin room {old} to {new}" in e.body, timeout=60)
    assert "Invite me to it" in asked.body and asked.room_id == direct

    session = PlainSession.login(synapse.url, alice.user_id, PASSWORD)   # Element invites the members
    session.invite(new, bot.user_id)
    session.logout()
    followed = await alice.wait_for(lambda e: e.sender == bot.user_id and e.room_id == new
                                    and "I followed this room's upgrade" in e.body, timeout=60)
    assert f"Replace {old} with {new} in `rooms`" in followed.body

    mark = uuid.uuid4().hex[:8]
    reply = await alice.command(new, f"!mark {mark}", bot.user_id, timeout=30)
    assert mark in bot.marks(), reply.body

    token = uuid.uuid4().hex[:8]
    since = time.monotonic()
    await alice.command(new, f"!alert-offer {token}", bot.user_id, timeout=30)
    alert = await alice.wait_for(lambda e: e.sender == bot.user_id and f"test condition {token}" in e.body
                                 and e.received > since, timeout=30)
    assert alert.room_id == new
    assert not [e for e in alice.events if e.room_id == old and f"test condition {token}" in e.body]
    doctor = asyncio.to_thread(subprocess.run, [sys.executable, "-m", "spbot", "doctor", "--config",
                                                str(bot.config_path)], capture_output=True, text=True, timeout=60)
    assert f"[warn] room {old} was upgraded to {new}: the bot follows it there" in (await doctor).stdout


async def test_a_tombstone_from_someone_who_is_not_an_admin_is_not_followed(make_bot, alice, carol, synapse):
    """carol is family, not an admin of the bot, though the room gives her the power to replace it."""
    bot = await make_bot("upgrade-carol")
    session = PlainSession.login(synapse.url, alice.user_id, PASSWORD)
    path = f"/_matrix/client/v3/rooms/{bot.room_id}/state/m.room.power_levels"
    levels = session.http.get(path).json()
    levels["users"][carol.user_id] = 150          # what m.room.tombstone needs in a v12 room
    session.http.put(path, json=levels).raise_for_status()
    session.logout()
    session = PlainSession.login(synapse.url, carol.user_id, PASSWORD)     # a room of hers, and a tombstone
    new = session.create_encrypted_room("carol's room", [bot.user_id, alice.user_id])
    session.http.put(f"/_matrix/client/v3/rooms/{bot.room_id}/state/m.room.tombstone", json={
        "body": "This room has been replaced", "replacement_room": new}).raise_for_status()
    session.logout()
    await alice.command(bot.room_id, "!ping", bot.user_id, timeout=30)      # the tombstone has been read
    assert "room_upgrade_ignored" in bot.log()
    assert new not in httpx.get(f"{synapse.url}/_matrix/client/v3/joined_rooms", headers={
        "Authorization": "Bearer " + __import__("json").loads(
            (bot.state_dir / "credentials.json").read_text())["access_token"]}).json()["joined_rooms"]
