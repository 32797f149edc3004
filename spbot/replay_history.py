"""The replay guard's table learned back from the rooms' history, when it was lost.

The guard (spbot/replay_guard.py) refuses a Megolm ciphertext whose (session, index) an earlier event
used, from its table in the state database. That table can go while the device's keys stay: a damaged
spbot.db set aside (spbot/state_loss.py), or one deleted by hand. Every room key the device ever
received would then decrypt an admin's old command again as a new one, re-posted by whoever holds the
admin's access token (or runs the homeserver). So before the first sync, a guard with an empty table on
a device that holds room keys reads the history of the bot's rooms back to its own join, decrypting as
it goes, and records each pair for the oldest event that used it. A mark in the state database (the
device id) says the table is complete for this device; a new device holds no old keys to learn from.
A message of this very device's own that does not decrypt on the way says its keys were put back too
(spbot/rolled_back.py): KeysBehind, after the pairs are written. The bot's own messages met on the way
are counted too: the request and job numbers they show went with the file (spbot/rolled_back.py).
A state that never handed out a number reads its rooms back for its own messages alone (any device,
readable or not): a first start finds none, and one after the whole state directory was lost (a new
device, none of the keys) finds those the lost state sent, whose numbers must not come again; sent
before this state was made, they say the directory was lost, which the admins are told (spbot/state_loss.py).
"""
from __future__ import annotations

from typing import Any

from nio import MessageDirection

from . import state_loss
from .logs import get_logger
from .replay_guard import ReplayGuard
from .rolled_back import KeysBehind, numbered_before, own_and_unreadable, own_messages
from .timeline import HistoryRefused, joined_rooms, own_join, read_pages

log = get_logger(__name__)

MARK = "replay_guard_complete_for"      # kv: the device whose pairs the table holds from its first key
MAX_EVENTS_PER_ROOM = 200_000           # ~2,000 requests; a family's admin room holds far fewer


async def ensure_complete(guard: ReplayGuard, client: Any, keep_trying) -> dict[str, str | None]:
    """Learn the table back from history when it is empty but the device holds room keys. Before the
    first sync; `keep_trying(step, work)` runs `work` until it succeeds (spbot/matrix.py). The bot's own
    messages read on the way (rolled_back.own_messages); KeysBehind when one of this device's could not be decrypted."""
    device, own = client.device_id, {}
    if await guard.store.get(MARK) == device:
        return own
    if not guard.has_records() and _holds_room_keys(client):
        rooms = await keep_trying("replay_history", lambda: joined_rooms(client))
        learned, behind = await keep_trying("replay_history", lambda: _learn(guard, client, rooms, own))
        log.warning("replay_guard_relearned", rooms=len(rooms), pairs=learned,
                    why="its table was lost while the device kept its room keys")
        if behind:
            raise KeysBehind(f"device {device}'s keys are older than its own messages")
    elif not await numbered_before(guard.store):
        rooms = await keep_trying("own_history", lambda: joined_rooms(client))
        earliest = await keep_trying("own_history", lambda: _read_own(client, rooms, own))
        await state_loss.note_earlier_state(guard.store, earliest, len(own))
    await guard.store.put(MARK, device)
    return own


def _holds_room_keys(client: Any) -> bool:
    store = getattr(getattr(client, "olm", None), "inbound_group_store", None)
    return store is not None and next(iter(store), None) is not None


async def _learn(guard: ReplayGuard, client: Any, rooms: list[str], own: dict[str, str | None]) -> tuple[int, bool]:
    """How many pairs were learned, and whether a message of this device's own could not be decrypted:
    its keys were put back too (spbot/rolled_back.py)."""
    with guard.learning() as pairs:
        behind = await _read_rooms(client, rooms, own, "replay_history_refused",
                                   "old ciphertexts of this room may run again if re-posted")
    await guard.adopt(pairs)
    return len(pairs), behind


async def _read_own(client: Any, rooms: list[str], own: dict[str, str | None]) -> float | None:
    """The bot's own messages in `rooms` back to its join, into `own` (nothing decrypts: no room key).
    When the oldest of them was sent (homeserver time, seconds), or None when there is none."""
    stamps: list[int] = []
    await _read_rooms(client, rooms, own, "own_history_refused",
                      "request and job numbers this room saw before may be handed out again", stamps)
    return min(stamps) / 1000 if stamps else None


async def _read_rooms(client: Any, rooms: list[str], own: dict[str, str | None], refused: str, todo: str,
                      stamps: list[int] | None = None) -> bool:
    """_read_back of each room; one whose history is refused is logged as `refused` and the others are
    still read (the bot starts). Whether a message of this device's did not decrypt."""
    behind = False
    for room_id in rooms:
        try:
            behind = await _read_back(client, room_id, own, stamps) or behind
        except HistoryRefused as exc:
            log.error(refused, room=room_id, error=str(exc)[:200], todo=todo)
    return behind


async def _read_back(client: Any, room_id: str, own: dict[str, str | None], stamps: list[int] | None) -> bool:
    """Every event of the room from now back to the bot's own join, newest first: nio decrypts each one
    it has the key for, and the guard notes its pair; the bot's own messages go into `own` (and when
    each was sent into `stamps`, if given). Whether a message of this device's did not decrypt."""
    behind = False
    async for chunk in read_pages(client, room_id, None, MessageDirection.back, MAX_EVENTS_PER_ROOM):
        behind = behind or any(own_and_unreadable(client, event) for event in chunk)
        mine = own_messages(chunk, client.user_id)
        own.update(mine)
        if stamps is not None:
            stamps += [event.server_timestamp for event in chunk if event.event_id in mine]
        if any(own_join(client, event) for event in chunk):
            break
    return behind
