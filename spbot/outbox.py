"""Everything the bot says goes through one persistent, ordered queue: when the homeserver is down the
messages wait (in SQLite, across restarts) and leave in order once it is back; nothing is lost.

`send` returns a local message id at once; `edit` queues an `m.replace` of that message, and while an
earlier edit of the same message is still waiting it is replaced rather than queued behind it."""
from __future__ import annotations

import asyncio
import json
import secrets
import time

from nio import LocalProtocolError, RoomSendResponse

from .logs import get_logger
from .matrix import NETWORK_ERRORS, Connection
from .store import Store

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
RETRYABLE_ERRCODES = {None, "M_LIMIT_EXCEEDED", "M_UNKNOWN"}
FORGOTTEN = {"msgtype": "m.notice", "body": "(a secret message, sent and no longer kept)"}
MAX_ATTEMPTS_UNKNOWN_ROOM = 20


class Outbox:
    def __init__(self, store: Store, connection: Connection):
        self.store = store
        self.connection = connection
        self._wake = asyncio.Event()
        self._sent = asyncio.Condition()
        self._salt = ""
        self._task: asyncio.Task | None = None
        self._in_flight: int | None = None      # the row being sent now: no longer safe to rewrite
        self._pick = asyncio.Lock()             # picking the next row vs. rewriting a waiting edit

    async def start(self) -> None:
        await self.store.ensure_schema(SCHEMA)
        await self.store.add_columns("outbox", {"relation": "TEXT", "secret": "INTEGER"})
        self._salt = await self.store.get("outbox_salt") or secrets.token_hex(6)
        await self.store.put("outbox_salt", self._salt)
        await self.store.execute("DELETE FROM outbox WHERE sent_at < ?", (time.time() - 7 * 86400,))
        self._task = asyncio.create_task(self._run(), name="outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def send(self, room_id: str, content: dict, secret: bool = False) -> int:
        """Queue a message; `secret` ones have their stored text replaced once they are sent."""
        message_id = await self.store.insert(
            "INSERT INTO outbox(room_id, content, created, secret) VALUES(?, ?, ?, ?)",
            (room_id, json.dumps(content), time.time(), int(secret)))
        self._wake.set()
        return message_id

    async def edit(self, message_id: int, content: dict) -> None:
        async with self._pick:
            waiting = await self.store.fetchone(
                "SELECT id FROM outbox WHERE edit_of = ? AND relation IS NULL AND sent_at IS NULL "
                "AND failed IS NULL", (message_id,))
            if waiting is not None and waiting["id"] != self._in_flight:
                await self.store.execute("UPDATE outbox SET content = ? WHERE id = ?",
                                         (json.dumps(content), waiting["id"]))
            else:
                target = await self.store.fetchone("SELECT room_id FROM outbox WHERE id = ?", (message_id,))
                await self.store.insert(
                    "INSERT INTO outbox(room_id, content, edit_of, created) VALUES(?, ?, ?, ?)",
                    (target["room_id"], json.dumps(content), message_id, time.time()))
        self._wake.set()

    async def annotate(self, message_id: int, key: str) -> None:
        """React to one of the bot's own messages (an m.annotation), e.g. ✅ / ❌ buttons."""
        target = await self.store.fetchone("SELECT room_id FROM outbox WHERE id = ?", (message_id,))
        await self.store.insert(
            "INSERT INTO outbox(room_id, content, edit_of, relation, created) VALUES(?, ?, ?, ?, ?)",
            (target["room_id"], json.dumps({"key": key}), message_id, "m.annotation", time.time()))
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

    async def pending(self) -> int:
        row = await self.store.fetchone(
            "SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL AND failed IS NULL")
        return row["n"]

    # --- the sender ----------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            self._wake.clear()        # before the look: a send after it sets the event again
            async with self._pick:
                row = await self.store.fetchone(
                    "SELECT * FROM outbox WHERE sent_at IS NULL AND failed IS NULL ORDER BY id LIMIT 1")
                self._in_flight = row["id"] if row is not None else None
            if row is None:
                await self._wake.wait()
                continue
            try:
                await self._send_one(row)
                backoff = 0.5
            except _Retry as exc:
                log.warning("send_retry", message=row["id"], reason=str(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            finally:
                self._in_flight = None

    async def _send_one(self, row) -> None:
        content = json.loads(row["content"])
        event_type = "m.room.message"
        if row["edit_of"] is not None:
            target = await self.store.fetchone("SELECT event_id FROM outbox WHERE id = ?",
                                               (row["edit_of"],))
            if not target or not target["event_id"]:
                return await self._mark(row["id"], failed="the message to edit was never sent")
            if row["relation"] == "m.annotation":
                event_type = "m.reaction"
                content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": target["event_id"],
                                            "key": content["key"]}}
            else:
                content = _replacement(target["event_id"], content)
        client = self.connection.client
        try:
            if client.should_query_keys:
                await client.keys_query()
            response = await client.room_send(row["room_id"], event_type, content,
                                              tx_id=f"{self._salt}-{row['id']}",
                                              ignore_unverified_devices=True)
        except NETWORK_ERRORS as exc:
            raise _Retry(f"homeserver unreachable ({exc.__class__.__name__})")
        except LocalProtocolError as exc:
            if time.time() - row["created"] < MAX_ATTEMPTS_UNKNOWN_ROOM:
                raise _Retry(str(exc))
            return await self._mark(row["id"], failed=str(exc))
        if isinstance(response, RoomSendResponse):
            return await self._mark(row["id"], event_id=response.event_id)
        errcode = getattr(response, "status_code", None)
        if errcode in RETRYABLE_ERRCODES:
            raise _Retry(f"{errcode}: {getattr(response, 'message', '')}")
        log.error("send_failed", message=row["id"], room=row["room_id"], errcode=errcode,
                  detail=getattr(response, "message", ""))
        await self._mark(row["id"], failed=f"{errcode}: {getattr(response, 'message', '')}")

    async def _mark(self, message_id: int, event_id: str | None = None, failed: str | None = None) -> None:
        await self.store.execute("UPDATE outbox SET event_id = ?, failed = ?, sent_at = ? WHERE id = ?",
                                 (event_id, failed, time.time(), message_id))
        await self.store.execute("UPDATE outbox SET content = ? WHERE id = ? AND secret = 1",
                                 (json.dumps(FORGOTTEN), message_id))
        async with self._sent:
            self._sent.notify_all()


class _Retry(Exception):
    pass


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
