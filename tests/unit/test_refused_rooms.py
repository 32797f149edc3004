"""spbot/refused_rooms.py: what an admin room refused for good reaches the admins directly; nothing else
is forwarded (a secret, an edit, a direct room's own failures: no loops, no copies of secrets)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from spbot.refused_rooms import RefusedRooms

ADMIN_ROOM, DIRECT_ROOM, UPGRADED_ROOM = "!admins:example.org", "!dm:example.org", "!old:example.org"
ADMINS = ["@alice:example.org", "@bob:example.org"]


async def forwarded_for(row: dict, reason: str) -> list[tuple[str, str]]:
    sent = []

    async def direct_message(admin, reply):
        sent.append((admin, reply.body))
    tasks = []
    messenger = SimpleNamespace(admin_rooms=lambda: [ADMIN_ROOM], direct_message=direct_message,
                                upgrades=SimpleNamespace(replaced={UPGRADED_ROOM: ADMIN_ROOM}))
    watcher = RefusedRooms(messenger, ADMINS, lambda coro, name: tasks.append(coro))
    await watcher.failed(row, reason)
    for coro in tasks:
        await coro
    return sent


def row(**fields) -> dict:
    return {"id": 7, "room_id": ADMIN_ROOM, "content": json.dumps({"msgtype": "m.text", "body": "disk full"}),
            "secret": 0, "edit_of": None, **fields}


@pytest.mark.parametrize("room", [ADMIN_ROOM, UPGRADED_ROOM])      # the old room of an upgrade is read-only
async def test_a_refused_message_goes_to_every_admin(room):
    sent = await forwarded_for(row(room_id=room), "M_FORBIDDEN: You don't have permission to post that.")
    assert [admin for admin, _ in sent] == ADMINS
    assert all(body.endswith("What I could not post:\ndisk full") for _, body in sent)


@pytest.mark.parametrize("fields, reason", [
    ({"secret": 1}, "M_FORBIDDEN: no"),
    ({"edit_of": 3}, "M_FORBIDDEN: no"),
    ({"room_id": DIRECT_ROOM}, "M_FORBIDDEN: no"),
    ({}, "M_TOO_LARGE even for the short notice"),
    ({"content": json.dumps({"msgtype": "m.text"})}, "M_FORBIDDEN: no"),
])
async def test_nothing_else_is_forwarded(fields, reason):
    assert await forwarded_for(row(**fields), reason) == []
