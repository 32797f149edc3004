"""A device's key file (nio's crypto store) that must not be used again, found while the bot ran and
marked for its next start, which sets the file aside and replaces the device (spbot/matrix.py):

- behind: older than the device's own messages (spbot/rolled_back.py); its Olm sessions are behind the
  ones its admins hold;
- damaged: at start nio reads its tables whole, and a damaged one there is "keys damaged" at once; but
  an index read only when a key is saved (a new room key, say) meets the damage later, in a sync step.
  Before, that step failed and was tried again for ever: the bot stayed deaf to every new room key and
  said nothing. Now the file is marked and the bot stops for its supervisor; the next start checks the
  marked file whole (PRAGMA quick_check)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .key_files import key_file
from .logs import get_logger
from .state_loss import DamageWatch
from .store import CHECK_SUFFIX, damage_read_whole, raised_through

log = get_logger(__name__)
BEHIND = ".behind"            # beside a key file found older than its device's own messages
SET_ASIDE_AS = {"keys damaged": "damaged", "keys behind": "behind"}    # the name's part: <file>.<it>-<time>
_NIO_STORE = f"{Path('nio', 'store')}"


def raised_by_key_store(exc: BaseException | None) -> bool:
    """Whether an error came through nio's store (the device's key file), not the bot's own."""
    return raised_through(exc, lambda name: _NIO_STORE in name)


def key_damage_watch(state_dir: Path, user_id: str, device_id: str,
                     stop: Callable[[BaseException], None]) -> DamageWatch:
    """A sync step watcher for the device's key file; `stop(exc)` stops the bot."""
    return DamageWatch(key_file(state_dir, user_id, device_id), stop, raised_by_key_store, "crypto_store_damaged")


def mark_behind(path: Path) -> None:
    path.with_name(path.name + BEHIND).touch(mode=0o600)


def marked_unusable(path: Path) -> tuple[str, str] | None:
    """Before nio opens the key file: ("keys behind", why) or ("keys damaged", SQLite's words) for a file
    marked so at a stop (the mark goes with the file when it is set aside); None when it can be used."""
    behind = path.with_name(path.name + BEHIND)
    if behind.exists():
        behind.unlink()
        return "keys behind", "older than the device's own messages"
    damage = _marked_and_damaged(path)
    return None if damage is None else ("keys damaged", damage)


def _marked_and_damaged(path: Path) -> str | None:
    """For a key file marked at a stop: SQLite's words when a whole read finds it damaged, else None
    (and the mark is gone). None when it was not marked."""
    mark = path.with_name(path.name + CHECK_SUFFIX)
    if not mark.exists():
        return None
    damage = damage_read_whole(path)
    if damage is None:
        mark.unlink()
    return damage
