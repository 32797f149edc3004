"""The private room the bot opens to send one person a password is made once, even when the bot is
stopped between making it and recording it: the real Messenger and store, over a client that keeps
nio's own room objects (the next start's first sync brings them back the same way)."""
from __future__ import annotations

import pytest
from nio import MatrixRoom, RoomCreateResponse

from spbot.messenger import DIRECT_NAME, Messenger
from spbot.render import Reply

from .pipeline_kit import ALICE, BOB, BOT, Parts, Stopped


class RoomMaker:
    """room_create on the fake client: the room exists (with its invitation synced) once it is made."""

    def __init__(self, client, stop_after_making: bool = False):
        self.client, self.stop_after_making, self.made = client, stop_after_making, []
        client.rooms = {}
        client.room_create = self.room_create

    async def room_create(self, *, invite, name, **_):
        room = add_room(self.client, f"!dm{len(self.made) + 1}:localhost", name, [BOT, *invite])
        self.made.append(room.room_id)
        if self.stop_after_making:
            raise Stopped
        return RoomCreateResponse(room.room_id)


def add_room(client, room_id: str, name: str, members: list[str], join_rule: str = "invite") -> MatrixRoom:
    room = MatrixRoom(room_id, BOT, encrypted=True)
    room.name, room.join_rule = name, join_rule
    for user in members:
        room.add_member(user, None, None, invited=user != BOT)
    client.rooms[room_id] = room
    return room


async def test_a_room_made_just_before_a_stop_is_used_after_the_restart(parts):
    maker = RoomMaker(parts.connection.client, stop_after_making=True)
    with pytest.raises(Stopped):
        await parts.messenger.direct_message(ALICE, Reply.text("your password: …"), secret=True)
    maker.stop_after_making = False

    again = Messenger(parts.outbox, parts.store, parts.connection, parts.config, parts.upgrades)      # the next start
    message = await again.direct_message(ALICE, Reply.text("your password: …"), secret=True)
    assert maker.made == ["!dm1:localhost"]
    row = await parts.store.fetchone("SELECT room_id FROM outbox WHERE id = ?", (message,))
    assert row["room_id"] == "!dm1:localhost"
    assert await parts.store.get(f"direct_room:{ALICE}") == "!dm1:localhost"


@pytest.mark.parametrize("members, join_rule, name", [
    ([BOT, ALICE, BOB], "invite", DIRECT_NAME),          # someone else is in it
    ([BOT, ALICE], "public", DIRECT_NAME),               # anyone may join it
    ([BOT, ALICE], "invite", "holiday photos"),          # another room of theirs
    ([BOT, BOB], "invite", DIRECT_NAME),                 # bob's private room
], ids=["a third member", "public", "another name", "another person's"])
async def test_only_a_private_room_of_the_two_of_them_is_taken_for_one(parts, members, join_rule, name):
    maker = RoomMaker(parts.connection.client)
    add_room(parts.connection.client, "!other:localhost", name, members, join_rule)
    await parts.messenger.direct_message(ALICE, Reply.text("hello"))
    assert maker.made == ["!dm1:localhost"]
    assert await parts.store.get(f"direct_room:{ALICE}") == "!dm1:localhost"


async def test_with_any_admin_room_a_notice_skips_the_private_rooms(tmp_path):
    """allow_any_admin_room: the admin rooms are the bot's rooms, and its private ones are not among
    them (the admin there would be told everything twice)."""
    parts = await Parts(tmp_path, rooms=[], allow_any_admin_room=True).start()
    try:
        client = parts.connection.client
        RoomMaker(client)
        add_room(client, "!admins:localhost", "Server admin", [BOT, ALICE, BOB])
        add_room(client, "!dm:localhost", DIRECT_NAME, [BOT, ALICE])
        add_room(client, "!named-so:localhost", DIRECT_NAME, [BOT, ALICE, BOB])      # not private
        assert parts.messenger.admin_rooms() == ["!admins:localhost", "!named-so:localhost"]
    finally:
        await parts.stop()
