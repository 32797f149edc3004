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
next start sets those keys aside and starts a new device (spbot/matrix.py)."""
from __future__ import annotations

import time
from typing import Any

from nio import MegolmEvent, MessageDirection

from .logs import get_logger
from .store import Store
from .timeline import HistoryRefused, joined_rooms, read_pages

log = get_logger(__name__)

MAX_EVENTS_PER_ROOM = 20_000


class KeysBehind(Exception):
    """The crypto store is older than this device's own messages in its rooms."""


async def claim_answered_since(store: Store, client: Any, since: str | None, keep_trying) -> dict[str, set[str]]:
    """`keep_trying(step, work)` runs `work` until it succeeds (spbot/matrix.py). The events answered
    after `since`, each with the ids of the bot's replies to it (an approval request answered since was
    decided since: spbot/approvals.py). KeysBehind (after the claims are recorded) when this device's own
    messages after `since` cannot be decrypted."""
    answered: dict[str, set[str]] = {}
    if not since:
        return answered
    behind = False
    for room_id in await keep_trying("answered_since", lambda: joined_rooms(client)):
        replies, own_unreadable = await keep_trying("answered_since",
                                                    lambda: _read_forward(client, room_id, since))
        for target, reply in replies:
            answered.setdefault(target, set()).add(reply)
        fresh = [event_id for event_id in {target for target, _ in replies}
                 if await store.claim_event(event_id, room_id, time.time())]
        if fresh:
            log.warning("handled_commands_recalled", room=room_id, events=len(fresh),
                        why="answered after the sync position this state holds: it was put back as it was")
        behind = behind or own_unreadable
    if behind:
        raise KeysBehind(f"device {client.device_id}'s keys are older than its own messages")
    return answered


async def _read_forward(client: Any, room_id: str, since: str) -> tuple[list[tuple[str, str]], bool]:
    """The bot's replies after `since` in the room (event replied to, reply), and whether a message of
    this device's there could not be decrypted."""
    answered, own_unreadable = [], False
    try:
        async for chunk in read_pages(client, room_id, since, MessageDirection.front, MAX_EVENTS_PER_ROOM):
            answered += [(target, event.event_id) for event in chunk
                         if (target := _reply_target(event, client.user_id))]
            own_unreadable = own_unreadable or any(own_and_unreadable(client, event) for event in chunk)
    except HistoryRefused as exc:       # a token the homeserver no longer takes, say: the bot starts
        log.error("answered_since_refused", room=room_id, error=str(exc)[:200],
                  todo="commands answered after this state's sync position may run again")
    return answered, own_unreadable


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
