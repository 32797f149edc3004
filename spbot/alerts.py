"""The bot speaks first: one alert per condition (a key such as `disk:/srv:warn`), repeated only every
`renotify` while it stays bad, and a recovery notice when it clears. State is in SQLite, so a restart
neither repeats nor forgets an alert; messages go through the outbox, so an unreachable homeserver delays
them but loses none. Hysteresis belongs to the caller: it decides when a condition counts as cleared.

The severity decides who is mentioned, and so whose phone rings ([alerts], spbot/alerts_settings.py):
an alert that mentions somebody is an m.text that the default push rules notify and highlight; so is the
recovery notice of an alert that rang. During the quiet hours a non-critical alert is held (durably) and
posted once when they end, if it still holds; one that clears before then is never posted.

A stop at any moment neither loses nor repeats a message: an alert's row counts as told only once its
message is queued, and a recovery notice is owed in the row (`resolution`) until it is queued; both are
queued under a key that makes a second attempt, after a restart, find the first (Outbox.send's `once`)."""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from .alerts_settings import AlertSettings
from .config import Config
from .logs import get_logger
from .messenger import Messenger
from .render import Reply, mention
from .store import Store
from .watchers import tell_each

log = get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_offers (
    message_id INTEGER PRIMARY KEY, command TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    key TEXT PRIMARY KEY,
    severity TEXT NOT NULL,
    active INTEGER NOT NULL,
    text TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_notified REAL NOT NULL,
    cleared REAL
);
"""
# held: a notification is owed once the quiet hours end; mentioned: whom its last message mentioned
# (NULL: not posted yet in this activation, or a row from before mentions were kept); todo, offer, recipients
# (the `to` of fire): what a held alert is posted with; resolution: the recovery notice owed (NULL: none);
# posts: how many of its messages were queued (in its key's every activation); told: the severity its last
# message said (NULL: not posted yet in this activation).
COLUMNS = {"held": "INTEGER NOT NULL DEFAULT 0", "mentioned": "TEXT", "todo": "TEXT NOT NULL DEFAULT ''",
           "offer": "TEXT", "recipients": "TEXT", "resolution": "TEXT", "posts": "INTEGER NOT NULL DEFAULT 0",
           "told": "TEXT"}
# Posted in this activation: whom it mentioned is known (or, in a row from before that was kept, it was
# notified and not held).
WAS_POSTED = "(mentioned IS NOT NULL OR (held = 0 AND last_notified > 0))"
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
ICONS = {"info": "ℹ️", "warning": "⚠️", "critical": "🚨"}
DEFAULT_RENOTIFY = 24 * 3600.0
RELEASE_CHECK = 60.0


@dataclass
class AlertState:
    key: str
    severity: str
    active: bool
    text: str
    first_seen: float
    last_notified: float
    held: bool = False
    mentioned: list[str] | None = None
    told: str | None = None


class Alerts:
    def __init__(self, store: Store, messenger: Messenger, config: Config, spawn=None):
        self.store = store
        self.messenger = messenger
        self.config = config
        self.settings: AlertSettings = config.settings("alerts")
        self.quiet = self.settings.quiet(config.timezone)
        self.spawn = spawn or (lambda coro, name: asyncio.create_task(coro, name=name))
        # Told of each alert as it is posted (first time or worse, not reminders):
        # async (key, severity, text, message_ids) -> None; e.g. the out-of-band relay.
        self.listeners: list = []

    async def start(self) -> None:
        await self.store.ensure_schema(SCHEMA)
        await self.store.add_columns("alerts", COLUMNS)
        for row in await self.store.fetchall("SELECT key FROM alerts WHERE resolution IS NOT NULL"):
            await self._resolve(row["key"])          # owed since a stop cut clear() short
        if self.quiet is not None or await self._held_keys():
            self.spawn(self._release_loop(), "held alerts")

    async def state(self, key: str) -> AlertState | None:
        row = await self.store.fetchone("SELECT * FROM alerts WHERE key = ?", (key,))
        if row is None:
            return None
        return AlertState(row["key"], row["severity"], bool(row["active"]), row["text"],
                          row["first_seen"], row["last_notified"], bool(row["held"]),
                          None if row["mentioned"] is None else json.loads(row["mentioned"]), row["told"])

    async def active(self, prefix: str = "") -> list[AlertState]:
        rows = await self.store.fetchall("SELECT key FROM alerts WHERE active = 1 AND key LIKE ? ORDER BY key",
                                         (prefix + "%",))
        return [await self.state(r["key"]) for r in rows]

    def quiet_now(self, severity: str, now: float) -> bool:
        """Whether an alert of this severity is held now (quiet hours; never a critical one)."""
        return severity != "critical" and self.quiet is not None and self.quiet.contains(now)

    async def fire(self, key: str, severity: str, text: str, todo: str = "",
                   renotify: float = DEFAULT_RENOTIFY, now: float | None = None,
                   offer: str | None = None, to: list[str] | None = None) -> bool:
        """The condition is bad now. Notifies when it is new, worse, or due again; True if it did.
        `to`: the admins to mention (default: all of them), e.g. not the one whose account is suspect.
        `offer` is a command (e.g. "!volume grow /srv +10") that an admin's ✅ on the alert starts, through
        the usual policy and approval flow, as if that admin had sent it.
        `renotify` is the caller's wish; [alerts.<severity>] renotify overrides it."""
        now = time.time() if now is None else now
        wanted = self.settings.policy(severity).renotify
        renotify = renotify if wanted is None else wanted
        current = await self.state(key)
        ongoing = current is not None and current.active
        # worse than what the admins were told (a stop may have come between the row and its message)
        worse = ongoing and SEVERITY_RANK[severity] > SEVERITY_RANK[current.told or current.severity]
        if ongoing and not worse and (current.held or now - current.last_notified < renotify):
            await self.store.execute("UPDATE alerts SET text = ?, todo = ?, offer = ? WHERE key = ?",
                                     (text, todo, offer, key))
            return False
        await self.store.execute(
            "INSERT INTO alerts(key, severity, active, text, first_seen, last_notified, todo, offer, recipients) "
            "VALUES(?,?,1,?,?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET severity = excluded.severity, active = 1, "
            "text = excluded.text, todo = excluded.todo, offer = excluded.offer, recipients = excluded.recipients, "
            "cleared = NULL, resolution = NULL, last_notified = 0, first_seen = CASE WHEN alerts.active "
            "THEN alerts.first_seen ELSE excluded.first_seen END, "
            "mentioned = CASE WHEN alerts.active THEN alerts.mentioned END, "
            "told = CASE WHEN alerts.active THEN alerts.told END",
            # last_notified 0 until it is posted: a stop in between must not count as having told anyone
            # (a new alert, one that came back, one that got worse or one due again alike)
            (key, severity, text, now, 0.0, todo, offer, json.dumps(to) if to else None))
        if self.quiet_now(severity, now):
            await self.store.execute("UPDATE alerts SET held = 1 WHERE key = ?", (key,))
            log.info("alert_held", key=key, severity=severity, until=self.quiet.ends_after(now))
            return False
        await self._post(key, now, reminder=ongoing and not worse and current.mentioned is not None)
        return True

    async def _post(self, key: str, now: float, reminder: bool) -> None:
        """Post the alert as its row says now, mentioning whom its severity asks for."""
        row = await self.store.fetchone("SELECT * FROM alerts WHERE key = ?", (key,))
        severity, text, todo, offer = row["severity"], row["text"], row["todo"], row["offer"]
        who = self._recipients(severity, row["recipients"])
        prefix = f"{ICONS[severity]} {'still: ' if reminder else ''}{text}"
        outside = f"{ICONS[severity]} {text}" + (f"\nWhat to do: {todo}" if todo else "")
        if offer:
            todo = f"react ✅ to this message to run {offer}" + (f"; or {todo}" if todo else "")
        message = prefix + (f"\nWhat to do: {todo}" if todo else "")
        # the row as it is until this post is recorded: the same key if a stop makes the next check post again
        once = f"alert|{key}|{row['posts']}"
        ids = await self.messenger.notify(mention(who, message) if who else Reply.text(message), once=once)
        for message_id in ids if offer else []:
            await self.store.execute("INSERT OR REPLACE INTO alert_offers(message_id, command, created) "
                                     "VALUES(?, ?, ?)", (message_id, offer, now))
        await self.store.execute("UPDATE alerts SET held = 0, last_notified = ?, mentioned = ?, told = ?, "
                                 "posts = posts + 1 WHERE key = ?", (now, json.dumps(who), severity, key))
        log.warning("alert", key=key, severity=severity, reminder=reminder, mentioned=len(who))
        if not reminder:
            await tell_each(self.listeners, key, severity, outside, ids, failure="alert_listener_failed")

    def _recipients(self, severity: str, recipients: str | None) -> list[str]:
        if self.settings.policy(severity).mention == "none":
            return []
        return json.loads(recipients) if recipients else list(self.config.admins)

    async def clear(self, key: str, text: str, now: float | None = None) -> bool:
        """The condition is good again; posts a recovery notice if an alert was active (and had been
        posted). True if an alert was active. The recovery of an alert that rang rings the same people,
        except a non-critical one during the quiet hours (good news can wait)."""
        now = time.time() if now is None else now
        changed = await self.store.execute(
            f"UPDATE alerts SET active = 0, held = 0, cleared = ?, "
            f"resolution = CASE WHEN {WAS_POSTED} THEN ? END WHERE key = ? AND active = 1",
            (now, f"✅ resolved: {text}", key))
        if not changed:
            return False
        if not await self._resolve(key):
            log.info("alert_cleared_unposted", key=key)
        return True

    async def _resolve(self, key: str) -> bool:
        """Post the recovery notice the row owes, if any (once, even when a stop cut the last try short)."""
        row = await self.store.fetchone("SELECT * FROM alerts WHERE key = ?", (key,))
        if row is None or row["resolution"] is None:
            return False
        who = self.config.admins if row["mentioned"] is None else json.loads(row["mentioned"])
        message = row["resolution"]
        quiet = self.quiet_now(row["severity"], row["cleared"])
        await self.messenger.notify(mention(who, message) if who and not quiet else Reply.text(message),
                                    once=f"resolved|{key}|{row['cleared']}")
        await self.store.execute("UPDATE alerts SET resolution = NULL WHERE key = ?", (key,))
        log.info("alert_cleared", key=key)
        return True

    # --- the end of the quiet hours ------------------------------------------------------------

    async def _held_keys(self) -> list[str]:
        rows = await self.store.fetchall("SELECT key FROM alerts WHERE active = 1 AND held = 1 ORDER BY first_seen")
        return [r["key"] for r in rows]

    async def release(self, now: float | None = None) -> int:
        """Outside the quiet hours: post every held alert that still holds, once. Returns how many."""
        now = time.time() if now is None else now
        released = 0
        for key in await self._held_keys():
            current = await self.state(key)
            if not self.quiet_now(current.severity, now):
                await self._post(key, now, reminder=current.mentioned is not None)
                released += 1
        return released

    async def _release_loop(self) -> None:
        while True:
            now = time.time()
            try:
                await self.release(now)
            except Exception:
                log.exception("held_alerts_release_failed")
            end = self.quiet.ends_after(now) if self.quiet is not None else now
            await asyncio.sleep(min(RELEASE_CHECK, max(0.2, end - now)) if end > now else RELEASE_CHECK)

    async def close_answered_offers(self, answered: dict[str, set[str]]) -> None:
        """A state put back as it was (spbot/rolled_back.py) holds offers as open that an admin's ✅ took
        since (the bot answered the alert message since): closed, so that the ✅ the older sync position
        brings again does not open the offered command a second time."""
        closed = 0
        for event_id in answered:
            closed += await self.store.execute("DELETE FROM alert_offers WHERE message_id IN "
                                               "(SELECT id FROM outbox WHERE event_id = ?)", (event_id,))
        if closed:
            log.warning("alert_offers_closed_since", offers=closed, why="taken after the state the bot started from")

    async def offered_command(self, event_id: str, room_id: str) -> str | None:
        """The command offered by the alert message with this event id in this room, if any (a ✅
        from another room, where the alert was never shown, opens nothing)."""
        row = await self.store.fetchone(
            "SELECT a.command FROM alert_offers a JOIN outbox o ON o.id = a.message_id "
            "WHERE o.event_id = ? AND o.room_id = ?", (event_id, room_id))
        return row["command"] if row else None
