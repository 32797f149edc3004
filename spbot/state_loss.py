"""A damaged state database (a failing disk, a bad sector): SQLite refuses to read spbot.db. Before, the
bot stopped with a traceback at every start, silent in the room. Now it sets the damaged file aside (kept
for a look or a salvage), starts with an empty one, and tells the admins, ringing them, what it forgot.
A missing one beside the device's keys (deleted by hand, a state directory restored in part) is the same
loss: before, the bot started afresh in silence and ran again the commands of the last minutes.

What it must not do is run a command twice: the record of handled commands went with the old file, so
no command sent before the loss runs, and none is answered one by one: the notice asks the admins to
send again what is still wanted (Screen.state_lost_at). The crypto store is another file: the device and its keys are unchanged."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .logs import get_logger
from .key_files import key_files
from .render import Reply
from .store import Store, StoreDamaged, is_damage, mark_for_check, raised_by_store, set_aside

log = get_logger(__name__)

LOST_KEY = "state_lost"       # in the new store: when, where the damaged file went, and SQLite's words


async def open_or_replace(store: Store) -> dict | None:
    """Open the store; a damaged one is set aside and an empty one opened. The record of the loss (also
    of a store missing while the device's keys are there), or None when the store opened as it was."""
    missing = not store.path.exists() and _device_kept(store.path.parent)
    try:
        await store.open()
    except StoreDamaged as exc:
        aside = set_aside(store.path)
        log.error("state_database_damaged", error=str(exc), set_aside=str(aside),
                  todo="started with an empty state database; check the disk")
        await store.open()
        return await _recorded(store, {"aside": str(aside), "error": str(exc)[:200]})
    if missing:
        log.error("state_database_missing", path=str(store.path),
                  todo="started with an empty state database; check what removed it")
        return await _recorded(store, {"missing": str(store.path)})
    return None


def _device_kept(state_dir: Path) -> bool:
    """A device's key files are there: this is not a first start."""
    return bool(key_files(state_dir))


async def _recorded(store: Store, what: dict, key: str = LOST_KEY) -> dict:
    record = {"at": time.time(), **what}
    await store.put(key, record)
    return record


async def lost_at(store: Store) -> float | None:
    """When this store replaced a damaged or missing one (commands sent before then never run), or None."""
    record: Any = await store.get(LOST_KEY)
    return record.get("at") if isinstance(record, dict) else None


def notice(record: dict, admins: list[str]) -> Reply:
    forgot = ("I forgot the history of jobs and the audit log, pending approval requests, alerts, the disk "
              "history and replies not sent yet; my device and its keys are unchanged. Commands sent "
              "before now are not run: send again what is still wanted.")
    if "missing" in record:
        return Reply.error(
            f"My state database {record['missing']} was missing when I started, so I started with an "
            f"empty one. {forgot}",
            "If nobody removed it on purpose, check what touched my state directory (a clean-up, a "
            "restore of part of it), and that the backups are recent (!backup list).").to(admins)
    return Reply.error(
        f"My state database was damaged ({record['error']}), so I set it aside as {record['aside']} and "
        f"started with an empty one. {forgot}",
        "A damaged file often means a failing disk: check it (dmesg, smartctl), and make sure the backups "
        "are recent (!backup list).").to(admins)


EARLIER_STATE_KEY = "earlier_state"   # messages of mine older than this state: when found, how many, told


async def note_earlier_state(store: Store, earliest: float | None, messages: int) -> None:
    """The rooms hold messages of the bot's account sent before this state was made (its first start):
    the whole state directory was lost or replaced (a reinstall, /var/lib/spbot deleted), and the bot
    logged in again as a new device with none of the keys. Noted once, and told by tell_earlier_state."""
    first_start = await store.get("first_start")
    if earliest is None or first_start is None or earliest >= first_start:
        return                          # a first start, or messages of this state's own time
    if await store.get(LOST_KEY) or await store.get(EARLIER_STATE_KEY):
        return                          # a lost database, told by its own notice; or noted already
    log.error("state_directory_lost", messages_before=messages,
              todo="started as a new device with an empty state; told the admins")
    await _recorded(store, {"messages": messages, "told": False}, key=EARLIER_STATE_KEY)


async def tell_earlier_state(store: Store, messenger: Any, admins: list[str]) -> None:
    """The notice of note_earlier_state, once (a stop before it was queued leaves it to the next start)."""
    record: Any = await store.get(EARLIER_STATE_KEY)
    if not isinstance(record, dict) or record.get("told"):
        return
    await messenger.notify(Reply.error(
        "I started without my earlier state: the room holds messages of mine from before it (a reinstall, "
        f"or my state directory {store.path.parent} deleted or replaced). I am a new device of my account, "
        "without the old keys, so I cannot read what was sent before; pending approval requests, running "
        "jobs, alerts and the disk history went with the old state. Commands sent before now are not run: "
        "send again what is still wanted.",
        "If nobody reinstalled me on purpose, check what removed my state directory, and that the backups "
        "are recent (!backup list).").to(admins), once=f"state-directory-lost-{record['at']}")
    await store.put(EARLIER_STATE_KEY, {**record, "told": True})


class DamageWatch:
    """Damage met after a database file opened (a page opening did not read): the file is marked for a
    whole check and the bot stops with a failure; its supervisor starts it again, and that start finds
    the damage, sets the file aside and tells the admins. A sync step watcher (spbot/matrix.py), also
    called for a start that failed. For the state database by default; `raised_by` and `event` say
    which file's errors it takes (the device's key file: spbot/unusable_keys.py)."""

    def __init__(self, path, stop, raised_by=raised_by_store, event: str = "state_database_damaged"):
        self.path = path
        self.stop = stop            # (exc) -> None: stop the bot with this failure
        self.raised_by = raised_by  # (exc) -> bool: whether the error came through this file's code
        self.event = event
        self.met = False

    async def failed(self, step: str, exc: BaseException) -> None:
        self.check(step, exc)

    def check(self, step: str, exc: BaseException) -> bool:
        """True when `exc` is this file's damage: the file is marked and the bot stops."""
        if not (is_damage(exc) and self.raised_by(exc)):
            return False
        if self.met:                # the same damage met again on the way out
            return True
        self.met = True
        mark_for_check(self.path)
        log.error(self.event, step=step, error=str(exc)[:200],
                  todo="stopping; the next start checks the file and sets it aside")
        self.stop(exc)
        return True

    async def succeeded(self, step: str) -> None:
        pass
