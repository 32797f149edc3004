"""A sync response read as the ordered list of new events, with nothing missing.

A homeserver sends at most a few events per room in one sync and marks the timeline `limited` when it
left some out (a bot that was stopped, a client that fell behind). The events in between are fetched
here from `/messages`, walking back from the timeline's `prev_batch` to the previous sync position, so
the reader sees every event once, oldest first. Used by the bot and by the chat client alike.

A homeserver put back in time (its database restored from a backup, by the bot's own `!backup restore`
say) is behind the position the reader holds: it answers that position with its own, older one and none
of the events in between, and a long poll from it waits for events past the old position while new ones
arrive below it. Those were lost without a word. For Synapse's tokens (`s<room stream>_…`; the spec calls
them opaque) the reader notices the position going back and reads each room back over a recent window
instead: what it had already handled is known by its own records.

Synapse answers a sync asked again within two minutes (same position, timeout and filter text) from a
cache, as it answered it the first time (`sync_response_cache_duration`). A bot restarted twice in that
time, asking from no position, got its previous run's answer: a position minutes old, taken for a
homeserver put back in time (a kill storm showed it, and a vote was lost). The syncs that must see the
present carry a filter text of their own (`fresh`)."""
from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field

from nio import (Api, AsyncClient, JoinedRoomsResponse, MatrixRoom, MessageDirection, RoomMemberEvent,
                 RoomMessagesResponse, SyncResponse)
from nio.rooms import MatrixInvitedRoom

from .logs import get_logger

log = get_logger(__name__)

# Per room and sync; more than this comes through `/messages` (fewer round trips than the default 10).
TIMELINE_LIMIT = 50
SYNC_FILTER = {"room": {"timeline": {"limit": TIMELINE_LIMIT}}}
GAP_PAGE = 100
SYNAPSE_POSITION = re.compile(r"s(\d+)(?:_|$)")
POSITION_PROBE = {"room": {"rooms": []}, "presence": {"types": []}, "account_data": {"types": []}}
MAX_GAP_EVENTS = 20_000


def fresh(sync_filter: dict) -> dict:
    """The filter as it is, in a text no earlier sync had: never answered from Synapse's cache."""
    presence = {**sync_filter.get("presence", {}), "not_types": [f"spbot.fresh.{uuid.uuid4().hex}"]}
    return {**sync_filter, "presence": presence}


class HistoryUnreadable(Exception):
    """`/messages` (or `/joined_rooms`) failed while reading history: the whole step is tried again."""


class HistoryRefused(HistoryUnreadable):
    """The homeserver refused `/messages` for good (403, 404, 400: not a busy or failing server, not an
    expired token): asking again would get the same answer."""


@dataclass
class Batch:
    """One sync response: every new timeline event of each joined room, oldest first, gaps filled."""
    next_batch: str
    events: list[tuple[MatrixRoom, object]] = field(default_factory=list)
    invites: list[tuple[MatrixInvitedRoom, object]] = field(default_factory=list)
    gap: list[tuple[MatrixRoom, object]] = field(default_factory=list)   # also in `events`

    @property
    def gap_events(self) -> int:
        return len(self.gap)


async def read_batch(client: AsyncClient, response: SyncResponse, since: str | None,
                     recent: float = 0.0) -> Batch:
    """The response's events in timeline order, with limited timelines filled back to `since`; with the
    homeserver gone back behind `since`, the last `recent` seconds of each room instead (when given).

    Call after nio processed the response (room state updated, Megolm events decrypted in place)."""
    batch = Batch(response.next_batch)
    if recent and went_back(since, response.next_batch):
        log.warning("homeserver_went_back", position=since, now=response.next_batch, reading_back=recent,
                    why="its database was put back as it was earlier: events since then came below the position")
        batch.gap = await _recent_events(client, response.next_batch, recent)
        batch.events = list(batch.gap)
    else:
        await _joined_events(client, response, since, batch)
    for room_id, info in response.rooms.invite.items():
        room = client.invited_rooms.get(room_id)
        if room is not None:
            batch.invites.extend((room, event) for event in info.invite_state)
    return batch


async def _joined_events(client: AsyncClient, response: SyncResponse, since: str | None, batch: Batch) -> None:
    """The response's room events into `batch`, each limited timeline filled back to `since` first."""
    for room_id, info in response.rooms.join.items():
        room = client.rooms.get(room_id)
        if room is None:
            continue
        timeline = info.timeline
        if timeline.limited and since and timeline.prev_batch:
            gap = [(room, event) for event in await fetch_gap(client, room_id, timeline.prev_batch, since)]
            batch.gap.extend(gap)
            batch.events.extend(gap)
        batch.events.extend((room, event) for event in timeline.events)


async def homeserver_behind(client: AsyncClient, since: str | None) -> bool:
    """Whether the homeserver's position is behind `since` (put back in time), asked before a sync that
    resumes from `since`. That sync would acknowledge every to-device message below `since`, and the
    homeserver delete them: the room keys the admins' devices sent to the bot since it was put back.
    The question is a sync from no position that asks for no room, presence or account data: cheap,
    and it acknowledges nothing. A refusal (an expired token, say) is left to the sync itself."""
    if not since or not SYNAPSE_POSITION.match(since):
        return False
    body = await answer_of(client, *Api.sync(client.access_token, timeout=0, filter=fresh(POSITION_PROBE)))
    return body is not None and went_back(since, body.get("next_batch"))


async def answer_of(client: AsyncClient, method: str, path: str, data: str | None = None) -> dict | None:
    """A request nio has no call for (or whose answer it would act on): its JSON object, None when refused."""
    response = await client.send(method, path, data)
    try:
        body = await response.json() if response.status == 200 else None
    finally:
        response.release()
    return body if isinstance(body, dict) else None


def went_back(since: str | None, now: str | None) -> bool:
    """Whether a Synapse sync token `now` is behind `since` (the room stream's position, `s<N>_…`)."""
    positions = [SYNAPSE_POSITION.match(token or "") for token in (since, now)]
    return all(positions) and int(positions[1].group(1)) < int(positions[0].group(1))


async def _recent_events(client: AsyncClient, position: str, seconds: float) -> list:
    """Each known room's events of the last `seconds` (server time), read back from `position`, oldest
    first, with their rooms."""
    found, since_ms = [], (time.time() - seconds) * 1000
    for room_id, room in list(client.rooms.items()):
        events: list = []
        async for chunk in read_pages(client, room_id, position, MessageDirection.back, MAX_GAP_EVENTS):
            recent = [event for event in chunk if getattr(event, "server_timestamp", 0) >= since_ms]
            events += recent
            if len(recent) < len(chunk) or any(own_join(client, event) for event in chunk):
                break
        found += [(room, event) for event in reversed(events)]
    return found


async def fetch_gap(client: AsyncClient, room_id: str, prev_batch: str, since: str) -> list:
    """The events between the sync position `since` and `prev_batch`, oldest first (decrypted by nio
    where it has the keys). Stops at the client's own join: what came before is not ours to read."""
    events: list = []
    async for chunk in read_pages(client, room_id, prev_batch, MessageDirection.back, MAX_GAP_EVENTS,
                                  end=since):
        for event in chunk:
            events.append(event)
            if own_join(client, event):
                return list(reversed(events))
    return list(reversed(events))


async def read_pages(client: AsyncClient, room_id: str, start: str | None, direction: MessageDirection,
                     max_events: int, end: str | None = None):
    """`/messages` page after page from `start` (None: the room's newest end), each page's events as
    nio gives them (decrypted where it has the keys), until the room's edge, `end` or `max_events`."""
    read = 0
    while read < max_events:
        response = await client.room_messages(room_id, start=start, end=end, direction=direction,
                                              limit=GAP_PAGE)
        if not isinstance(response, RoomMessagesResponse):
            status = getattr(getattr(response, "transport_response", None), "status", None)
            refused = status is not None and 400 <= status < 500 and status not in (401, 429)
            raise (HistoryRefused if refused else HistoryUnreadable)(
                f"/messages in {room_id}: {getattr(response, 'message', response)}")
        read += len(response.chunk)
        yield response.chunk
        if not response.chunk or not response.end or response.end == start:
            return
        start = response.end
    log.warning("history_cut", room=room_id, read=read, most=max_events)


async def joined_rooms(client: AsyncClient) -> list[str]:
    """The rooms the client is in, asked of the homeserver (nio knows them only after a sync)."""
    response = await client.joined_rooms()
    if not isinstance(response, JoinedRoomsResponse):
        raise HistoryUnreadable(f"/joined_rooms: {getattr(response, 'message', response)}")
    return list(response.rooms)


def own_join(client: AsyncClient, event) -> bool:
    return (isinstance(event, RoomMemberEvent) and event.state_key == client.user_id
            and event.membership == "join" and (event.prev_membership or "") != "join")
