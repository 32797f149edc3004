"""Where the bot's notices go (Messenger.admin_rooms) once an admin room was upgraded
(spbot/room_upgrades.py): to the room that replaced it, both with listed rooms and with
allow_any_admin_room; never to the old room, which the upgrade left read-only."""
from __future__ import annotations

from types import SimpleNamespace

from spbot.messenger import Messenger
from spbot.room_upgrades import RoomUpgrades

from .pipeline_kit import OTHER_ROOM, ROOM, make_config

NEW_ROOM = "!new:example.org"


def messenger(tmp_path, **config) -> Messenger:
    upgrades = RoomUpgrades(store=None)
    upgrades.replaced = {ROOM: NEW_ROOM}
    rooms = {r: SimpleNamespace(room_id=r, name="Admins") for r in (ROOM, OTHER_ROOM, NEW_ROOM)}
    connection = SimpleNamespace(client=SimpleNamespace(rooms=rooms))
    return Messenger(None, None, connection, make_config(tmp_path, **config), upgrades)


def test_listed_rooms_are_followed_to_their_replacement(tmp_path):
    assert messenger(tmp_path).admin_rooms() == [NEW_ROOM, OTHER_ROOM]


def test_any_admin_room_leaves_out_an_upgraded_one(tmp_path):
    assert messenger(tmp_path, rooms=[], allow_any_admin_room=True).admin_rooms() == sorted([NEW_ROOM, OTHER_ROOM])
