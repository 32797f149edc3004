"""The one place where upgrades meet backups: the backup of every service before an upgrade."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable

if TYPE_CHECKING:
    from spbot.feature import Host

Progress = Callable[[str, "float | None"], Awaitable[None]]


def backup_before_upgrade(host: "Host") -> Callable[[Progress], Awaitable[list[Any]]] | None:
    """How to back up every configured service (it returns the backups' outcomes, and alerts on a
    failure), or None when this bot runs without backups or [backup] has no services."""
    from ..backup import BackupFeature

    try:
        backup = host.feature(BackupFeature)
    except LookupError:
        return None
    if not backup.backups.services:
        return None
    return lambda progress: backup.run_and_alert((), "manual", progress)
