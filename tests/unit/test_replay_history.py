"""When the replay guard learns its table back from history (spbot/replay_history.py), on a real store:
only when the table is empty while the device holds room keys, once per device, oldest event first, and
not marked complete while the history cannot be read. The rooms' history is a stand-in homeserver that
answers /joined_rooms and /messages through a stand-in olm machine (the part of nio the guard hooks)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from nio import JoinedRoomsResponse, RoomMessagesError, RoomMessagesResponse

from spbot.replay_guard import ReplayGuard
from spbot.replay_history import MARK, ensure_complete
from spbot.timeline import HistoryUnreadable
from spbot.store import Store

from .test_pipeline_screen import StandInOlm, megolm

ROOM, BOT = "!admins:x", "@bot:x"


class History:
    """A room's history, newest first, 2 events per page; `fail` pages answer an error first."""

    def __init__(self, olm, events, fail: int = 0):
        self.olm, self.events, self.fail, self.pages = olm, events, fail, 0
        self.device_id, self.user_id = "DEVICE", BOT
        self.olm.inbound_group_store = [object()] if events else []

    async def joined_rooms(self):
        return JoinedRoomsResponse([ROOM])

    async def room_messages(self, room_id, start=None, end=None, direction=None, limit=10):
        self.pages += 1
        if self.fail:
            self.fail -= 1
            return RoomMessagesError("busy")
        at = int(start or 0)
        chunk = [self.olm._decrypt(event) for event in self.events[at:at + 2]]
        end = str(at + 2) if at + 2 < len(self.events) else None
        return RoomMessagesResponse(room_id, chunk, start or "0", end)


async def retried(step, work, tries: int = 5):
    """As the connection's until_done, but giving up after a few tries (a test must not hang)."""
    for _ in range(tries - 1):
        try:
            return await work()
        except HistoryUnreadable:
            continue
    return await work()


@pytest.fixture
async def guard(tmp_path):
    store = await Store(tmp_path / "spbot.db").open()
    guard = ReplayGuard(store, BOT)
    olm = StandInOlm()
    await guard.start(SimpleNamespace(olm=olm))
    olm._decrypt = lambda event: olm.decrypt_megolm_event(event, ROOM)
    yield guard, olm
    await store.close()


async def test_a_lost_table_is_learned_oldest_first_and_marked(guard):
    guard, olm = guard
    newest_first = [megolm("!ping", "$replay", 0), megolm("!ping", "$other", 1),
                    megolm("!ping", "$original", 0)]
    history = History(olm, newest_first, fail=2)
    await ensure_complete(guard, history, retried)
    assert history.pages == 2 + 2                      # two refused, then both pages
    rows = await guard.store.fetchall("SELECT message_index, event_id FROM megolm_indexes ORDER BY 1")
    assert [(r["message_index"], r["event_id"]) for r in rows] == [(0, "$original"), (1, "$other")]
    assert await guard.store.get(MARK) == "DEVICE"
    await ensure_complete(guard, history, retried)     # marked: not read again
    assert history.pages == 4


async def test_an_intact_table_or_a_new_device_is_only_marked(guard):
    guard, olm = guard
    await guard.store.execute("CREATE TABLE requests (id INTEGER PRIMARY KEY AUTOINCREMENT)")
    await guard.store.execute("INSERT INTO requests DEFAULT VALUES")   # a state that numbered requests
    guard._first_use[("SESSION", 5)] = "$known"        # an older bot's table, kept
    history = History(olm, [megolm("!ping", "$e", 0)])
    await ensure_complete(guard, history, retried)
    assert history.pages == 0 and await guard.store.get(MARK) == "DEVICE"

    guard._first_use.clear()
    await guard.store.put(MARK, "OLD-DEVICE")
    fresh = History(olm, [])                           # a new device: no room keys yet
    await ensure_complete(guard, fresh, retried)
    assert fresh.pages == 0 and await guard.store.get(MARK) == "DEVICE"


async def test_history_that_cannot_be_read_leaves_the_table_unmarked(guard):
    guard, olm = guard

    async def gives_up(step, work):
        return await work()

    with pytest.raises(HistoryUnreadable):
        await ensure_complete(guard, History(olm, [megolm("!ping", "$e", 0)], fail=1), gives_up)
    assert await guard.store.get(MARK) is None
    assert guard._learned is None                      # decryptions are checked again, not only noted


async def test_a_room_whose_history_is_refused_for_good_does_not_keep_the_bot_from_starting(guard):
    guard, olm = guard
    history = History(olm, [megolm("!ping", "$e", 0)])

    async def forbidden(room_id, start=None, end=None, direction=None, limit=10):
        history.pages += 1
        answer = RoomMessagesError("You are not allowed to read this room", "M_FORBIDDEN")
        answer.transport_response = SimpleNamespace(status=403)
        return answer

    history.room_messages = forbidden
    await ensure_complete(guard, history, retried)
    assert history.pages == 1 and await guard.store.get(MARK) == "DEVICE"
