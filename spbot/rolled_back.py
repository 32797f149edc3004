"""Commands answered after the bot's sync position: a state directory put back as it was earlier (a server
snapshot restored after a bad upgrade, /var/lib/spbot from a backup) forgot the commands it handled
since, and resuming from its older position brings them again. Before, those still fresh enough
(within max_command_age) ran a second time: the upgrade that broke the server, say, right after its
snapshot was restored. Before the first sync, the bot reads its rooms forward from that position, and
each event it answered there (its reply is in the room) is recorded as handled. Usually there is
nothing after the position but what arrived while it was stopped: one request per room.

When this device's own messages there cannot be decrypted, its crypto store was put back too: a
device's keys must not go back in time (its Olm sessions and one-time keys are behind what the others
hold: its messages would not be readable, and it could not read theirs). The bot stops then, and its
next start sets those keys aside and starts a new device (spbot/matrix.py).

The numbers the room knows requests and jobs by (Request #7, job #12) are handed out again by a state put
back: the next request would be #7 again, and `!approve 7` typed from the older message in the room would
approve it. The bot's messages after the position that its outbox never sent were sent by the state that
was lost; the numbers skip ahead by that many, which is at least how many it handed out. The same with
the state database lost: its own messages read back to its join (spbot/replay_history.py)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from nio import MegolmEvent, MessageDirection

from .logs import get_logger
from .store import Store
from .timeline import HistoryRefused, joined_rooms, read_pages

log = get_logger(__name__)

MAX_EVENTS_PER_ROOM = 20_000
NUMBERED = ("requests", "jobs")      # the tables whose ids the room sees: Request #N, job #N


@dataclass
class Since:
    """What the rooms show after the sync position: each event the bot answered there, with the ids of
    its replies to it; and every message of the bot's there, with the transaction id it was sent with
    (the homeserver shows it to the device that sent it)."""
    answered: dict[str, set[str]] = field(default_factory=dict)
    own: dict[str, str | None] = field(default_factory=dict)


class KeysBehind(Exception):
    """The crypto store is older than this device's own messages in its rooms."""


async def claim_answered_since(store: Store, client: Any, since: str | None, keep_trying) -> Since:
    """`keep_trying(step, work)` runs `work` until it succeeds (spbot/matrix.py). What the rooms show
    after `since` (an approval request answered since was decided since: spbot/approvals.py). KeysBehind
    (after the claims are recorded) when this device's own messages after `since` cannot be decrypted."""
    found = Since()
    if not since:
        return found
    behind = False
    for room_id in await keep_trying("answered_since", lambda: joined_rooms(client)):
        replies, own, own_unreadable = await keep_trying("answered_since",
                                                         lambda: _read_forward(client, room_id, since))
        found.own.update(own)
        for target, reply in replies:
            found.answered.setdefault(target, set()).add(reply)
        fresh = [event_id for event_id in {target for target, _ in replies}
                 if await store.claim_event(event_id, room_id, time.time())]
        if fresh:
            log.warning("handled_commands_recalled", room=room_id, events=len(fresh),
                        why="answered after the sync position this state holds: it was put back as it was")
        behind = behind or own_unreadable
    if behind:
        raise KeysBehind(f"device {client.device_id}'s keys are older than its own messages")
    return found


async def settle(bot: Any, own: dict[str, str | None], since: Since) -> None:
    """Once the rooms are read, what a lost state did is not done, handed out or told again: its
    decisions close requests and offers, its messages (`own`, those read back after a lost state
    database, and those after the position) skip numbers, and the jobs it saw on are not told as cut."""
    everything = {**own, **since.own}
    unsent = set(everything) - await bot.outbox.sent_among(everything)
    await bot.approvals.settle_answered(since.answered)
    await bot.alerts.close_answered_offers(since.answered)
    await _skip_numbers(bot.store, len(unsent))
    await bot.jobs.report_interrupted(went_on={target for target, replies in since.answered.items()
                                               if replies & unsent})


async def numbered_before(store: Store) -> bool:
    """Whether this state ever handed out a request or job number."""
    if await store.fetchone("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'") is None:
        return False                        # no AUTOINCREMENT table has had a row yet
    marks = ",".join("?" * len(NUMBERED))
    return await store.fetchone(f"SELECT 1 FROM sqlite_sequence WHERE name IN ({marks}) AND seq > 0",
                                NUMBERED) is not None


async def _skip_numbers(store: Store, lost: int) -> None:
    """Request and job numbers past those a lost state may have handed out (see above)."""
    if not lost:
        return
    for table in NUMBERED:
        await store.execute("INSERT INTO sqlite_sequence (name, seq) SELECT ?, 0 WHERE NOT EXISTS "
                            "(SELECT 1 FROM sqlite_sequence WHERE name = ?)", (table, table))
        await store.execute("UPDATE sqlite_sequence SET seq = seq + ? WHERE name = ?", (lost, table))
    log.warning("numbers_skipped", by=lost, why="messages of mine in the rooms that this state never sent")


# Through /messages, not from the first sync's batch: Synapse caches a /sync response for two minutes
# (caches.sync_response_cache_duration), so a start soon after another one asking the same `since` gets
# the earlier answer, and the rest comes in later batches (tried: a command answered after it ran again).
async def _read_forward(client: Any, room_id: str, since: str
                        ) -> tuple[list[tuple[str, str]], dict[str, str | None], bool]:
    """The bot's replies after `since` in the room (event replied to, reply), the ids of all its messages
    there, and whether a message of this device's there could not be decrypted."""
    answered, own, own_unreadable = [], {}, False
    try:
        async for chunk in read_pages(client, room_id, since, MessageDirection.front, MAX_EVENTS_PER_ROOM):
            answered += [(target, event.event_id) for event in chunk
                         if (target := _reply_target(event, client.user_id))]
            own.update(own_messages(chunk, client.user_id))
            own_unreadable = own_unreadable or any(own_and_unreadable(client, event) for event in chunk)
    except HistoryRefused as exc:       # a token the homeserver no longer takes, say: the bot starts
        log.error("answered_since_refused", room=room_id, error=str(exc)[:200],
                  todo="commands answered after this state's sync position may run again")
    return answered, own, own_unreadable


def own_message(event: Any, user_id: str) -> bool:
    """A message of the bot's (any device), or one it cannot read (a lost device's: it may be one)."""
    return getattr(event, "sender", None) == user_id and (
        isinstance(event, MegolmEvent) or (getattr(event, "source", None) or {}).get("type") == "m.room.message")


def own_messages(events: list, user_id: str) -> dict[str, str | None]:
    """The bot's messages among `events`: event id -> the transaction id it was sent with, when shown."""
    return {event.event_id: getattr(event, "transaction_id", None) for event in events
            if own_message(event, user_id)}


def own_and_unreadable(client: Any, event: Any) -> bool:
    """A message of this very device that its crypto store cannot decrypt: the store is older than it."""
    return (isinstance(event, MegolmEvent) and event.sender == client.user_id
            and event.device_id == client.device_id)


def _reply_target(event: Any, user_id: str) -> str | None:
    """The event `user_id`'s event replies to; read in the clear wrapper too (nio keeps the relation
    there), so a reply whose room key is gone with the restore still counts."""
    if getattr(event, "sender", None) != user_id:
        return None
    relation = ((getattr(event, "source", None) or {}).get("content") or {}).get("m.relates_to")
    target = relation.get("m.in_reply_to") if isinstance(relation, dict) else None
    event_id = target.get("event_id") if isinstance(target, dict) else None
    return event_id if isinstance(event_id, str) else None
