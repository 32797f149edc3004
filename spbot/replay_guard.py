"""Megolm replay protection that survives restarts.

A Megolm ciphertext decrypts again whenever it is re-posted as a new event (by anyone: it is only
ciphertext). nio refuses a second use of a (session, message index) pair, but it keeps that record in
memory only, so after a restart an admin's old command could run again. This guard takes over nio's
check (`OlmDevice.message_index_ok`) and binds each pair to the event id that first used it, in the
bot's SQLite store.

Decryption is synchronous inside nio's sync handling, so the decision is made on an in-memory copy of
the table (loaded at start, written through): a replayed text message is let through marked as a replay,
so the screen can refuse it with a reply; any other replayed event (a reaction, say) stays undecrypted,
as nio would leave it. The guard also keeps, per event, the cleartext (outer) content nio throws away, so
the screen can see a relation that only the unencrypted wrapper declares, and when the wrapper was first
seen (its age as the homeserver served it, spbot/event_age.py: the decrypted event has lost it, and keys
that come late must not make an old command look fresh)."""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field

from nio import EncryptionError, MegolmEvent, RoomMessageText

from .event_age import sent_at
from .logs import get_logger
from .store import Store

log = get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS megolm_indexes (
    session_id TEXT NOT NULL,
    message_index INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    room_id TEXT,
    sender TEXT,
    seen_at REAL NOT NULL,
    PRIMARY KEY (session_id, message_index)
);
"""
ORIGINS_KEPT = 4096        # decrypted events whose origin is remembered until the screen reads it


@dataclass
class MegolmOrigin:
    """Where a decrypted event came from: its Megolm session and index, and the cleartext wrapper."""
    session_id: str
    message_index: int
    outer_content: dict = field(default_factory=dict)
    replay_of: str | None = None      # the event id that first used this (session, index)
    sent_at: float | None = None      # on this machine's clock, from the wrapper's age when first seen

    @property
    def key(self) -> tuple[str, int]:
        return self.session_id, self.message_index


class ReplayGuard:
    """Each (Megolm session, message index) is acted on for one event id only, across restarts."""

    def __init__(self, store: Store, own_user_id: str):
        self.store = store
        self.own_user_id = own_user_id
        self._first_use: dict[tuple[str, int], str] = {}
        self._origins: OrderedDict[str, MegolmOrigin] = OrderedDict()
        self._refused: OrderedDict[str, str] = OrderedDict()     # replayed event id → first event id
        self._sent_at: OrderedDict[str, float] = OrderedDict()   # event id → when sent (first sight)
        self._unsaved: list[tuple] = []
        self._flushing: asyncio.Task | None = None
        self._index: int | None = None        # set by nio's index check during one decryption
        self._olm = None
        self._learned: dict[tuple[str, int], tuple] | None = None    # while reading history back

    async def start(self, client) -> None:
        """Load the table and take over the olm machine's replay check (idempotent)."""
        if self._olm is client.olm:
            return
        await self.store.ensure_schema(SCHEMA)
        rows = await self.store.fetchall("SELECT session_id, message_index, event_id FROM megolm_indexes")
        self._first_use = {(r["session_id"], r["message_index"]): r["event_id"] for r in rows}
        olm = client.olm
        decrypt = olm.decrypt_megolm_event
        olm.message_index_ok = self._note_index
        olm.decrypt_megolm_event = lambda event, room_id=None: self._decrypt(decrypt, event, room_id)
        self._olm = olm
        log.info("replay_guard_ready", known=len(self._first_use))

    # --- inside nio's decryption (synchronous) -------------------------------------------------

    def _note_index(self, message_index: int, event: MegolmEvent) -> bool:
        self._index = message_index
        return True                      # decided in _decrypt, once the event's type is known

    def _decrypt(self, decrypt, event: MegolmEvent, room_id: str | None):
        self._index = None
        if event.event_id not in self._sent_at and (when := sent_at(event.source, time.time())) is not None:
            _remember(self._sent_at, event.event_id, when)       # before a failure for want of keys
        result = decrypt(event, room_id)
        index, self._index = self._index, None
        if index is None or event.sender == self.own_user_id:
            return result
        if self._learned is not None:        # newest first: the oldest event to use a pair keeps it
            self._learned[(event.session_id, index)] = (event.event_id, room_id or event.room_id, event.sender)
            return result
        origin = MegolmOrigin(event.session_id, index, dict(event.source.get("content") or {}),
                              sent_at=self._sent_at.get(event.event_id))
        first = self._first_use.setdefault(origin.key, event.event_id)
        if first != event.event_id:
            origin.replay_of = first
            if not isinstance(result, RoomMessageText):
                if event.event_id not in self._refused:     # decryption is retried: warn once
                    log.warning("replayed_event_refused", sender=event.sender, event_id=event.event_id,
                                first_event_id=first, type=type(result).__name__)
                    _remember(self._refused, event.event_id, first)
                raise EncryptionError(f"Duplicate message index: replay of {first}")
        else:
            self._unsaved.append((*origin.key, event.event_id, room_id or event.room_id, event.sender,
                                  time.time()))
            self._flush_soon()
        _remember(self._origins, event.event_id, origin)
        return result

    def _flush_soon(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return                        # written by the next claim() or flush()
        if self._flushing is None or self._flushing.done():
            self._flushing = loop.create_task(self.flush())

    # --- learning a lost table back (spbot/replay_history.py) ----------------------------------

    def has_records(self) -> bool:
        return bool(self._first_use)

    @contextmanager
    def learning(self):
        """Meanwhile, decryptions (of history read newest first) are only noted: (session, index) →
        (event id, room, sender) of the oldest event seen using it."""
        self._learned = {}
        try:
            yield self._learned
        finally:
            self._learned = None

    async def adopt(self, learned: dict[tuple[str, int], tuple]) -> None:
        """History's first uses replace what the table held for the same pairs."""
        now = time.time()
        await self.store.executemany(
            "INSERT OR REPLACE INTO megolm_indexes(session_id, message_index, event_id, room_id, sender,"
            " seen_at) VALUES(?, ?, ?, ?, ?, ?)", [(*key, *used, now) for key, used in learned.items()])
        self._first_use.update({key: used[0] for key, used in learned.items()})

    # --- for the screen ------------------------------------------------------------------------

    def origin(self, event_id: str) -> MegolmOrigin | None:
        """The Megolm origin of an event this guard saw decrypted, or None."""
        return self._origins.get(event_id)

    def refused_replay(self, event_id: str) -> str | None:
        """For an event left undecrypted because it replays an earlier one: that earlier event's id."""
        return self._refused.get(event_id)

    async def flush(self) -> None:
        """Write the pairs first seen since the last flush (also scheduled after each decryption)."""
        while self._unsaved and self.store.db is not None:
            rows, self._unsaved = self._unsaved, []
            try:
                await self.store.executemany(
                    "INSERT OR IGNORE INTO megolm_indexes(session_id, message_index, event_id, room_id,"
                    " sender, seen_at) VALUES(?, ?, ?, ?, ?, ?)", rows)
            except Exception as exc:     # the store is closing: claim() rewrites what matters
                log.warning("replay_guard_flush_failed", error=exc.__class__.__name__, rows=len(rows))
                return

    async def claim(self, origin: MegolmOrigin, event_id: str, room_id: str, sender: str) -> str:
        """Bind the origin's (session, index) to `event_id` on disk unless an earlier event holds it;
        returns the event id that holds it (`event_id` itself for a first use)."""
        await self.flush()               # an earlier use seen in this same sync may not be on disk yet
        await self.store.execute(
            "INSERT OR IGNORE INTO megolm_indexes(session_id, message_index, event_id, room_id, sender,"
            " seen_at) VALUES(?, ?, ?, ?, ?, ?)", (*origin.key, event_id, room_id, sender, time.time()))
        row = await self.store.fetchone(
            "SELECT event_id FROM megolm_indexes WHERE session_id = ? AND message_index = ?", origin.key)
        return origin.replay_of or row["event_id"]


def _remember(kept: OrderedDict, key: str, value) -> None:
    kept[key] = value
    while len(kept) > ORIGINS_KEPT:
        kept.popitem(last=False)
