"""Trust on first use of each admin's cross-signing identity: the first master key seen for a user is
pinned; a different one later is reported as "changed" and the old pin stays until an admin accepts the
new key (`spbot trust accept`, `!trust`). Pure logic over any JSON key-value store with async
`get(key, default)` / `put(key, value)` (spbot.store.Store has them).

    pins = IdentityPins(store)
    result = await pins.check(user_id, await query_identity(http, user_id))
    if result.state == "changed": ...   # warn, mention the user, show both fingerprints
"""
from __future__ import annotations

import os
from pathlib import Path

import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .signing import format_fingerprint

__all__ = ["IdentityPins", "KeyMoved", "PinResult", "PinState", "JSONStore", "format_fingerprint",
           "master_key_of"]

PinState = Literal["pinned", "ok", "changed", "no_identity"]
HISTORY = 10


class KeyMoved(ValueError):
    """The identity to accept is not the key the approval request showed: nothing was pinned."""

    def __init__(self, user_id: str, shown: str, now: str | None):
        super().__init__(f"the identity of {user_id} changed again: the request showed "
                         f"{format_fingerprint(shown)}, it is now {format_fingerprint(now)}")
        self.user_id, self.shown, self.now = user_id, shown, now


class JSONStore(Protocol):
    async def get(self, key: str, default: Any = None) -> Any: ...
    async def put(self, key: str, value: Any) -> None: ...


@dataclass(frozen=True)
class PinResult:
    """pinned: first key seen for this user, now pinned (or a key just accepted);
    ok: the key equals the pin; changed: another key than the pin (the pin is kept);
    no_identity: the user has no cross-signing identity (nothing pinned or changed)."""
    state: PinState
    user_id: str
    master_key: str | None    # the key seen now
    pinned_key: str | None    # the pin after this call (the old key while "changed")

    @property
    def fingerprint(self) -> str:
        return format_fingerprint(self.master_key)

    @property
    def pinned_fingerprint(self) -> str:
        return format_fingerprint(self.pinned_key)

    @property
    def trusted(self) -> bool:
        return self.state in ("pinned", "ok")


def master_key_of(identity: Any) -> str | None:
    """A master key from a UserIdentity (anything with `.master_key`), a key string, or None."""
    if identity is None or isinstance(identity, str):
        return identity or None
    key = getattr(identity, "master_key", None)
    if key is not None and not isinstance(key, str):
        raise TypeError("master_key must be a string")
    return key


class IdentityPins:
    def __init__(self, store: JSONStore, prefix: str = "identity_pin:"):
        self.store = store
        self.prefix = prefix

    def _key(self, user_id: str) -> str:
        return self.prefix + user_id

    async def record(self, user_id: str) -> dict | None:
        """The stored pin: {"master_key", "pinned_at", "pending": {...} | None, "history": [...]}."""
        value = await self.store.get(self._key(user_id))
        return value if isinstance(value, dict) and value.get("master_key") else None

    async def pinned_key(self, user_id: str) -> str | None:
        record = await self.record(user_id)
        return record["master_key"] if record else None

    async def check(self, user_id: str, identity: Any) -> PinResult:
        """Compare the user's current master key with the pin (pinning it if there is none)."""
        seen = master_key_of(identity)
        record = await self.record(user_id)
        if seen is None:
            return PinResult("no_identity", user_id, None, record["master_key"] if record else None)
        now = time.time()
        if record is None:
            await self.store.put(self._key(user_id), {"master_key": seen, "pinned_at": now,
                                                      "pending": None, "history": []})
            return PinResult("pinned", user_id, seen, seen)
        if record["master_key"] == seen:
            if record.get("pending"):
                await self.store.put(self._key(user_id), {**record, "pending": None})
            return PinResult("ok", user_id, seen, seen)
        pending = record.get("pending") or {}
        if pending.get("master_key") != seen:
            await self.store.put(self._key(user_id), {**record, "pending": {"master_key": seen,
                                                                            "first_seen": now}})
        return PinResult("changed", user_id, seen, record["master_key"])

    async def pending_key(self, user_id: str) -> str | None:
        """The last changed key seen by `check` and not yet accepted."""
        record = await self.record(user_id)
        return ((record or {}).get("pending") or {}).get("master_key")

    async def accept(self, user_id: str, identity: Any, expected: str | None = None,
                     by: str = "", announced: bool = True) -> PinResult:
        """Pin this identity's master key (an admin confirmed the change out of band). With `expected`
        (the key an approval request showed) a different key raises KeyMoved and nothing is pinned.
        `by` says who decided; `announced=False` leaves telling the room to the bot (see `unannounced`):
        an acceptance made where the bot does not run, at the server's console."""
        key = master_key_of(identity)
        if key is None:
            raise ValueError(f"{user_id} has no cross-signing identity to accept")
        if expected is not None and key != expected:
            raise KeyMoved(user_id, expected, key)
        record = await self.record(user_id)
        history = list((record or {}).get("history") or [])
        if record and record["master_key"] != key:
            history = (history + [{"master_key": record["master_key"], "pinned_at": record.get("pinned_at"),
                                   "replaced_at": time.time()}])[-HISTORY:]
        await self.store.put(self._key(user_id), {"master_key": key, "pinned_at": time.time(),
                                                  "pending": None, "history": history,
                                                  "accepted_by": by, "announced": announced})
        return PinResult("pinned", user_id, key, key)

    async def unannounced(self, user_id: str) -> dict | None:
        """The pin record if an acceptance (e.g. `spbot trust accept` at the console) was not yet told
        to the room."""
        record = await self.record(user_id)
        return record if record and record.get("announced") is False else None

    async def mark_announced(self, user_id: str) -> None:
        record = await self.record(user_id)
        if record is not None:
            await self.store.put(self._key(user_id), {**record, "announced": True})

    async def forget(self, user_id: str) -> None:
        """Drop the pin (the next check pins whatever it sees)."""
        await self.store.put(self._key(user_id), None)


# An acceptance at the console (another process) leaves this file's time changed: the running bot looks
# at it, not at the store, so that an idle bot does not query the store for it every few seconds.
CONSOLE_NOTE = "trust-console-accepted"


def leave_console_note(state_dir: Path) -> None:
    note = Path(state_dir) / CONSOLE_NOTE
    note.touch(mode=0o600)
    os.utime(note)


def console_note_time(state_dir: Path) -> int | None:
    try:
        return os.stat(Path(state_dir) / CONSOLE_NOTE).st_mtime_ns
    except OSError:
        return None
