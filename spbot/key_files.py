"""Where a device's keys live: nio's crypto store, one SQLite file per device in <state dir>/crypto,
named <user id>_<device id>.db as nio names it, with the bot's markers beside it (.behind, and
.damaged-<time> for one set aside). The one place that knows this layout."""
from __future__ import annotations

from pathlib import Path

SUFFIX = ".db"


def crypto_dir(state_dir: Path | str) -> Path:
    return Path(state_dir) / "crypto"


def key_file(state_dir: Path | str, user_id: str, device_id: str, marker: str = "") -> Path:
    """The device's store, or with `marker` the file beside it that marks it."""
    return crypto_dir(state_dir) / f"{user_id}_{device_id}{SUFFIX}{marker}"


def key_files(state_dir: Path | str, user_id: str | None = None) -> list[Path]:
    """Every device store there (of `user_id`'s devices when given), in name order."""
    folder = crypto_dir(state_dir)
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"{user_id}_*{SUFFIX}" if user_id else f"*{SUFFIX}"))


def device_of(path: Path, user_id: str) -> str:
    """The device id in the name of one of `user_id`'s stores."""
    return path.name[len(user_id) + 1:-len(SUFFIX)]
