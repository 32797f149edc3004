"""The one place where upgrades meet backups: the backup of every service before an upgrade."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable

if TYPE_CHECKING:
    from spbot.feature import Host

Progress = Callable[[str, "float | None"], Awaitable[None]]


def backup_before_upgrade(host: "Host") -> Callable[[Progress], Awaitable[list[Any]]] | None:
    """How to back up every configured service (it returns the backups' outcomes, and alerts on a
    failure), or None when no services are set up in [backup].

    Merge seam: this still reaches the backups module of before the feature packages; point it at
    `host.feature(BackupFeature)` once backups are a feature.
    """
    from spbot import backups

    if not backups.backups_of(host).settings.services:
        return None
    return lambda progress: backups.run_and_alert(host, (), "manual", progress)
