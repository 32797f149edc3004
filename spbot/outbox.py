"""Everything the bot says goes through one persistent, ordered queue: when the homeserver is down the
messages wait (in SQLite, across restarts) and leave in order once it is back; nothing is lost.

`send` returns a local message id at once; `edit` queues an `m.replace` of that message, and while an
earlier edit of the same message is still waiting it is replaced rather than queued behind it.

A message leaves only after the first sync (before it the client knows no rooms) and while the
homeserver answers; it waits as long as it takes. Only a refusal that no retry can change fails a row
(the bot is not in the room any more, the homeserver forbids it), and that is logged as an error.
A message too large for a Matrix event is shortened before sending, and if the homeserver still
refuses it as too large, a short notice saying so goes instead: an answer is never silently lost.
Messages leave in order within a lane, and the lanes take turns: everything said while handling an
admin's command (its replies, progress, edits) goes in that admin's lane (`speaking_for`, set by the
dispatcher), the rest in one shared lane; so one admin's flood of answers never queues another's reply.
Secret messages (passwords) are wiped once sent: the row's text is overwritten and the write-ahead
log checkpointed and truncated, so the secret's bytes are gone from every file of the store."""
from __future__ import annotations

import asyncio
import json
import secrets
import time
from contextvars import ContextVar
from typing import Awaitable, Callable

from nio import (EncryptionError, GroupEncryptionError, JoinedRoomsResponse, LocalProtocolError,
                 RoomSendResponse)

from .logs import get_logger
from .homeserver_errors import NETWORK_ERRORS
from .matrix import UNKNOWN_TOKEN, Connection, know_devices
from .render import Reply
from .room_keys import share_room_key
from .store import Store
from .watchers import tell_each

log = get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id TEXT NOT NULL,
    content TEXT NOT NULL,
    edit_of INTEGER REFERENCES outbox(id),
    event_id TEXT,
    created REAL NOT NULL,
    sent_at REAL,
    failed TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(sent_at, failed);
"""
# Refusals no retry can change; anything else (rate limits, 5xx, a token being sorted out) waits.
PERMANENT_ERRCODES = {"M_FORBIDDEN", "M_BAD_JSON", "M_NOT_JSON", "M_INVALID_PARAM"}
FORGOTTEN = {"msgtype": "m.notice", "body": "(a secret message, sent and no longer kept)"}
# A whole event may have 65536 bytes (Synapse's MAX_PDU_SIZE). Encryption turns the content into
# base64 ciphertext (x4/3) plus keys and ids, and the event adds ~1.5 KB of its own: 40 000 bytes of
# content JSON (non-ASCII escaped, as nio serialises it) leaves room for all of that.
MAX_CONTENT_BYTES = 40_000
RETRY_FIRST, RETRY_MAX = 0.5, 10.0
# Whose turn a message waits for: the admin whose command is being handled (inherited by the tasks it
# starts, e.g. its job); unset, the shared lane.
speaking_for: ContextVar[str] = ContextVar("speaking_for", default="")
DRAIN_SECONDS = 3.0                 # at stop, how long waiting messages may still take to leave
MAX_CRASHES = 10                    # attempts at a row that keeps raising an unexpected error
WIPE_RETRIES = 20                   # checkpoint attempts while a reader holds the write-ahead log


class Outbox:
    def __init__(self, store: Store, connection: Connection):
        self.store = store
        self.connection = connection
        self._wake = asyncio.Event()
        self._sent = asyncio.Condition()
        self._salt = ""
        self._task: asyncio.Task | None = None
        self._wiper: asyncio.Task | None = None
        # Rows whose send began, and those an earlier run queued (it may have tried them): the homeserver
        # may hold them under their transaction id, and would answer a retry with the old content.
        self._tried: set[int] = set()
        self._new_after = 0
        self._pick = asyncio.Lock()             # picking the next row vs. rewriting a waiting edit
        self._turns: dict[str, int] = {}        # lane -> when it was last served (round robin)
        self._turn = 0
        # Told of each message dropped for good: async (row, reason) -> None (spbot/refused_rooms.py).
        self.on_failed: list[Callable[[dict, str], Awaitable[None]]] = []
        # (exc) -> True when a send failed on a damaged key file: the bot stops, and the message waits
        # for the next start's new device (spbot/unusable_keys.py) rather than being dropped as a bug.
        self.on_damage: Callable[[BaseException], bool] = lambda exc: False

    async def start(self) -> None:
        await self.store.ensure_schema(SCHEMA)
        await self.store.add_columns("outbox", {"relation": "TEXT", "secret": "INTEGER", "lane": "TEXT",
                                                "once": "TEXT"})
        await self.store.ensure_schema("CREATE UNIQUE INDEX IF NOT EXISTS outbox_once ON outbox(once);")
        self._salt = await self.store.get("outbox_salt") or secrets.token_hex(6)
        await self.store.put("outbox_salt", self._salt)
        await self.store.execute("DELETE FROM outbox WHERE sent_at < ?", (time.time() - 7 * 86400,))
        self._new_after = (await self.store.fetchone("SELECT COALESCE(MAX(id), 0) AS id FROM outbox"))["id"]
        waiting = await self.pending()
        if waiting:
            log.info("outbox_waiting", messages=waiting)
        self._task = asyncio.create_task(self._run(), name="outbox")

    async def stop(self, drain: float = DRAIN_SECONDS) -> None:
        """Let what is waiting leave first, while the homeserver answers (up to `drain` seconds; the
        rest leaves at the next start); an idle outbox stops at once."""
        if self._task is not None and not self._task.done() and self.connection.online.is_set():
            try:
                await asyncio.wait_for(self._drained(), drain)
            except asyncio.TimeoutError:
                log.info("outbox_left_waiting", messages=await self.pending())
        for task in (self._task, self._wiper):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def send(self, room_id: str, content: dict, secret: bool = False, once: str | None = None) -> int:
        """Queue a message; `secret` ones are wiped from the store once they are sent. `once`: a key that
        queues it at most once (while its row is kept, a week after sending): sent again with the same key,
        e.g. after a restart cut short what followed the first send, it returns the first one's id."""
        message_id = await self.store.insert(
            "INSERT INTO outbox(room_id, content, created, secret, lane, once) VALUES(?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(once) DO NOTHING",
            (room_id, json.dumps(content), time.time(), int(secret), speaking_for.get(), once))
        if once is not None:        # the row that holds the key (this one, or the first one's)
            message_id = (await self.store.fetchone("SELECT id FROM outbox WHERE once = ?", (once,)))["id"]
        self._wake.set()
        return message_id

    async def edit(self, message_id: int, content: dict) -> None:
        async with self._pick:
            waiting = await self.store.fetchone(
                "SELECT id FROM outbox WHERE edit_of = ? AND relation IS NULL AND sent_at IS NULL "
                "AND failed IS NULL", (message_id,))
            if waiting is not None and waiting["id"] > self._new_after and waiting["id"] not in self._tried:
                await self.store.execute("UPDATE outbox SET content = ? WHERE id = ?",
                                         (json.dumps(content), waiting["id"]))
            else:
                target = await self.store.fetchone("SELECT room_id, lane FROM outbox WHERE id = ?",
                                                   (message_id,))
                await self.store.insert(            # in its message's lane: never ahead of it
                    "INSERT INTO outbox(room_id, content, edit_of, created, lane) VALUES(?, ?, ?, ?, ?)",
                    (target["room_id"], json.dumps(content), message_id, time.time(), target["lane"]))
        self._wake.set()

    async def annotate(self, message_id: int, key: str) -> None:
        """React to one of the bot's own messages (an m.annotation), e.g. ✅ / ❌ buttons."""
        target = await self.store.fetchone("SELECT room_id, lane FROM outbox WHERE id = ?", (message_id,))
        await self.store.insert(
            "INSERT INTO outbox(room_id, content, edit_of, relation, created, lane) VALUES(?, ?, ?, ?, ?, ?)",
            (target["room_id"], json.dumps({"key": key}), message_id, "m.annotation", time.time(),
             target["lane"]))
        self._wake.set()

    async def event_id(self, message_id: int, timeout: float | None = None) -> str | None:
        """The Matrix event id of a queued message once it is sent (None if sending failed for good)."""
        async def sent() -> str | None:
            async with self._sent:
                while True:
                    row = await self.store.fetchone(
                        "SELECT event_id, failed FROM outbox WHERE id = ?", (message_id,))
                    if row["event_id"] or row["failed"]:
                        return row["event_id"]
                    await self._sent.wait()
        return await asyncio.wait_for(sent(), timeout)

    async def undelivered(self, message_ids: list[int]) -> list[int]:
        """Those of these messages that have not reached the homeserver yet."""
        marks = ",".join("?" * len(message_ids))
        rows = await self.store.fetchall(f"SELECT id FROM outbox WHERE id IN ({marks}) AND event_id IS NULL",
                                         list(message_ids)) if message_ids else []
        return [r["id"] for r in rows]

    async def sent_among(self, messages: dict[str, str | None]) -> set[str]:
        """Those of these events (event id -> the transaction id the homeserver shows its sender) that
        this outbox sent: its rows of the last week, and a row still waiting whose send reached the
        homeserver just before the bot was killed (the row was not marked sent, the room has it)."""
        ids, found = sorted(messages), set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = await self.store.fetchall(f"SELECT event_id FROM outbox WHERE event_id IN "
                                             f"({','.join('?' * len(chunk))})", chunk)
            found |= {row["event_id"] for row in rows}
        waiting = {_txn_id(self._salt, dict(row)) for row in await self.store.fetchall(
            "SELECT id, created FROM outbox INDEXED BY outbox_pending WHERE sent_at IS NULL AND failed IS NULL")}
        return found | {event_id for event_id, txn in messages.items() if txn is not None and txn in waiting}

    async def _drained(self) -> None:
        async with self._sent:
            while await self.pending():
                await self._sent.wait()

    async def pending(self) -> int:
        row = await self.store.fetchone(
            "SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL AND failed IS NULL")
        return row["n"]

    # --- the sender ----------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = RETRY_FIRST
        crashes: dict[int, int] = {}            # a row our own code keeps failing on must not block the rest
        while True:
            await self._homeserver_ready()
            self._wake.clear()        # before the look: a send after it sets the event again
            async with self._pick:
                row = await self._next_row()
                if row is not None:
                    self._tried.add(row["id"])
            if row is None:
                await self._wake.wait()
                continue
            try:
                await self._send_one(dict(row))
                self._tried.discard(row["id"])
                backoff = RETRY_FIRST
            except asyncio.CancelledError:
                raise
            except _Retry as exc:
                log.warning("send_retry", message=row["id"], reason=str(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX)
            except Exception as exc:
                if self.on_damage(exc):
                    return
                # a bug, not the homeserver: retried a few times, then dropped
                attempts = crashes[row["id"]] = crashes.get(row["id"], 0) + 1
                log.exception("send_crashed", message=row["id"], attempt=attempts)
                if attempts >= MAX_CRASHES:
                    del crashes[row["id"]]
                    await self._fail(dict(row), "sending it kept failing in the bot's own code (see the log)")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX)

    async def _next_row(self):
        """The oldest waiting row of the lane served longest ago (round robin over the lanes)."""
        heads = await self.store.fetchall(
            "SELECT * FROM outbox WHERE id IN (SELECT MIN(id) FROM outbox WHERE sent_at IS NULL AND "
            "failed IS NULL GROUP BY COALESCE(lane, ''))")
        if not heads:
            return None
        self._turns = {lane: turn for lane, turn in self._turns.items()
                       if lane in {head["lane"] or "" for head in heads}}
        row = min(heads, key=lambda head: (self._turns.get(head["lane"] or "", 0), head["id"]))
        self._turn += 1
        self._turns[row["lane"] or ""] = self._turn
        return row

    async def _homeserver_ready(self) -> None:
        """Until the first sync is done (nio knows no rooms before it), and while syncs fail, until one
        succeeds again, or RETRY_MAX has passed (the send is the better probe if upkeep is what fails)."""
        await self.connection.first_sync_done.wait()
        if not self.connection.online.is_set():
            try:
                await asyncio.wait_for(self.connection.online.wait(), RETRY_MAX)
            except asyncio.TimeoutError:
                pass

    async def _send_one(self, row: dict) -> None:
        built = await self._event(row)
        if built is None:
            return await self._mark(row, failed="the message to edit was never sent")
        event_type, content = built
        client = self.connection.client
        token = client.access_token
        try:
            await know_devices(client)
            await share_room_key(client, row["room_id"])
            response = await client.room_send(row["room_id"], event_type, content, tx_id=_txn_id(self._salt, row),
                                              ignore_unverified_devices=True)
        except NETWORK_ERRORS as exc:
            self._drop_group_session(row["room_id"])
            raise _Retry(f"homeserver unreachable ({exc.__class__.__name__})")
        except KeyError:          # nio: a device-list change replaced the room key while it was shared
            raise _Retry("the room key was replaced while it was shared; sharing the new one")
        except (LocalProtocolError, EncryptionError, GroupEncryptionError) as exc:
            if not client.access_token:          # nio forgets the token at a soft logout
                raise _Retry(await self._renewed_session(token))
            if await self._not_in_room(row["room_id"]):
                return await self._fail(row, f"the bot is not in room {row['room_id']} any more")
            self._drop_group_session(row["room_id"])
            raise _Retry(f"{exc.__class__.__name__}: {exc}")
        if isinstance(response, RoomSendResponse):
            return await self._mark(row, event_id=response.event_id)
        errcode = getattr(response, "status_code", None)
        detail = f"{errcode}: {getattr(response, 'message', '')}"
        if errcode == "M_TOO_LARGE":
            return await self._send_notice_instead(row, _size(content))
        if errcode in PERMANENT_ERRCODES:
            return await self._fail(row, detail)
        if errcode == UNKNOWN_TOKEN and getattr(response, "soft_logout", False):
            raise _Retry(await self._renewed_session(token))
        raise _Retry(detail)

    async def _renewed_session(self, expired: str) -> str:
        """The bot's session expired (a soft logout): renewed here rather than at the next sync, which may
        be half a minute away. Why the message waits a moment, for the log."""
        try:
            renewed = await self.connection.renew_session(expired)
        except ConnectionError:
            return "the session expired and the homeserver cannot be reached to renew it"
        return "the session expired: renewed" if renewed else "the session expired and cannot be renewed"

    async def _event(self, row: dict) -> tuple[str, dict] | None:
        """The event type and content to send for a row, shortened to fit (None: its target was never
        sent, so an edit or reaction has nothing to point at)."""
        content = json.loads(row["content"])
        if row["edit_of"] is None:
            return "m.room.message", fit(content, MAX_CONTENT_BYTES)
        target = await self.store.fetchone("SELECT event_id FROM outbox WHERE id = ?", (row["edit_of"],))
        if not target or not target["event_id"]:
            return None
        if row["relation"] == "m.annotation":
            return "m.reaction", {"m.relates_to": {"rel_type": "m.annotation",
                                                   "event_id": target["event_id"], "key": content["key"]}}
        # An edit carries its text twice (the fallback body and m.new_content).
        return "m.room.message", _replacement(target["event_id"], fit(content, MAX_CONTENT_BYTES // 2 - 200))

    async def _send_notice_instead(self, row: dict, size: int) -> None:
        """The homeserver refused the event as too large: say so in its place, once."""
        original = json.loads(row["content"])
        if original.get("spbot.too_long"):
            return await self._fail(row, "M_TOO_LARGE even for the short notice")
        notice = too_long_notice(original, size)
        log.warning("send_too_large", message=row["id"], room=row["room_id"], size=size)
        await self.store.execute("UPDATE outbox SET content = ? WHERE id = ?",
                                 (json.dumps(notice), row["id"]))
        await self._send_one({**row, "content": json.dumps(notice)})

    async def _not_in_room(self, room_id: str) -> bool:
        """Whether the homeserver confirms the bot is not joined to the room (a network error or a
        room nio simply has not synced yet is not that: the message waits)."""
        client = self.connection.client
        if room_id in client.rooms:
            return False
        try:
            response = await client.joined_rooms()
        except NETWORK_ERRORS:
            return False
        return isinstance(response, JoinedRoomsResponse) and room_id not in response.rooms

    def _drop_group_session(self, room_id: str) -> None:
        """After a failed attempt some devices may not have the room key: share a fresh one next time
        (nio marks a session shared even when sending the keys failed)."""
        olm = getattr(self.connection.client, "olm", None)
        if olm is not None:
            olm.outbound_group_sessions.pop(room_id, None)

    async def _fail(self, row: dict, reason: str) -> None:
        log.error("send_failed_for_good", message=row["id"], room=row["room_id"], reason=reason,
                  hint="the message is dropped; nothing will retry it")
        await self._mark(row, failed=reason)
        await tell_each(self.on_failed, row, reason, failure="outbox_failure_watcher_failed")

    async def _mark(self, row: dict, event_id: str | None = None, failed: str | None = None) -> None:
        secret = bool(row.get("secret"))
        if secret:
            await self.store.execute(
                "UPDATE outbox SET event_id = ?, failed = ?, sent_at = ?, content = ? WHERE id = ?",
                (event_id, failed, time.time(), json.dumps(FORGOTTEN), row["id"]))
            await self._wipe()
        else:
            await self.store.execute("UPDATE outbox SET event_id = ?, failed = ?, sent_at = ? WHERE id = ?",
                                     (event_id, failed, time.time(), row["id"]))
        async with self._sent:
            self._sent.notify_all()

    async def _wipe(self) -> None:
        """Move the overwritten pages into the database file and empty the write-ahead log, which
        still holds every earlier copy of the secret's page (secure_delete zeroes the old bytes)."""
        if not await self.store.checkpoint() and (self._wiper is None or self._wiper.done()):
            self._wiper = asyncio.create_task(self._wipe_later(), name="outbox wipe")

    async def _wipe_later(self) -> None:
        for attempt in range(WIPE_RETRIES):
            await asyncio.sleep(min(0.25 * 2 ** attempt, 30.0))
            if await self.store.checkpoint():
                return
        log.error("secret_wipe_incomplete", hint="a reader kept the write-ahead log busy; it is "
                  "emptied at the next start or after the next secret message")


class _Retry(Exception):
    pass


def _size(content: dict) -> int:
    """Bytes of the content as nio serialises it for encryption (compact, non-ASCII escaped)."""
    return len(json.dumps(content, separators=(",", ":")))


def fit(message: dict, budget: int) -> dict:
    """The message as it is if it fits `budget`; else its plain text cut to fit, ending with "…" and
    a note (the HTML is dropped: it cannot be cut safely); else a short notice in its place."""
    size = _size(message)
    if size <= budget:
        return message
    body = str(message.get("body", ""))
    note = (f"\n… (shortened: the whole answer was {size // 1024} KB, more than one Matrix message "
            "can hold)")
    shortened = {k: v for k, v in message.items() if k not in ("format", "formatted_body")}
    low, high = 0, len(body)
    while low < high:                           # the longest prefix of the text that fits
        middle = (low + high + 1) // 2
        shortened["body"] = body[:middle] + note
        if _size(shortened) <= budget:
            low = middle
        else:
            high = middle - 1
    shortened["body"] = body[:low] + note
    if _size(shortened) > budget:               # something other than the text is too large
        return too_long_notice(message, size)
    log.info("message_shortened", size=size, budget=budget)
    return shortened


def too_long_notice(message: dict, size: int) -> dict:
    """What goes instead of an answer the homeserver will not take; it keeps the reply relation."""
    notice = Reply.error(
        f"My answer was too long to send ({size // 1024} KB; a Matrix message holds about 64 KB), "
        "so it was not sent.",
        "Ask for less at a time: one item or service instead of all, or a shorter command.").content()
    reply_to = (message.get("m.relates_to") or {}).get("m.in_reply_to")
    if reply_to:
        notice["m.relates_to"] = {"m.in_reply_to": reply_to}
    notice["spbot.too_long"] = True
    return notice


def _replacement(event_id: str, new: dict) -> dict:
    """The content of an m.replace edit: fallback text for old clients plus m.new_content."""
    new_content = {k: v for k, v in new.items() if k not in ("m.relates_to", "m.mentions")}
    content = {**new_content, "body": "* " + new.get("body", ""),
               "m.new_content": new_content,
               "m.relates_to": {"rel_type": "m.replace", "event_id": event_id}}
    if "formatted_body" in new:
        content["formatted_body"] = "* " + new["formatted_body"]
    content["m.mentions"] = {}
    return content


def _txn_id(salt: str, row: dict) -> str:
    """The same for every try of one message (the homeserver sends it once), and new for a message made
    after the state database was put back as it was: its row ids come again then, and the homeserver,
    which keeps transaction ids for a day, took each for the earlier message and sent nothing (a
    restore swallowed every reply and alert until the ids passed the old ones). Hence `created` too."""
    return f"{salt}-{row['id']}-{int(row['created'] * 1e6)}"
