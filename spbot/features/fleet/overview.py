"""This server in one line, for !fleet: host, up, load, worst disk, last backup, pending upgrades,
failing services. A part that cannot be read says so in its place; the line is never left out."""
from __future__ import annotations

import time
from typing import Any

from spbot.logs import get_logger
from spbot.render import human_duration
from spbot.system.services import system_summary

log = get_logger(__name__)
UPGRADE_CHECK_KEY = "upgrade:last_check"      # what spbot/features/upgrade remembers of its last check


async def one_line(host: Any, name: str) -> str:
    parts = [f"{name}: up {await _part(_uptime)}", await _part(_load)]
    parts.append("disk " + await _part(lambda: _worst_disk(host)))
    parts.append("backup " + await _part(lambda: _last_backup(host)))
    parts.append("upgrades " + await _part(lambda: _pending(host)))
    parts.append("failing " + await _part(lambda: _failing(host)))
    return " · ".join(parts)


async def _part(read) -> str:
    try:
        return await read()
    except Exception as exc:         # one unreadable part must not cost the whole line
        log.info("fleet_line_part_failed", error=exc.__class__.__name__)
        return "?"


async def _uptime() -> str:
    return human_duration((await system_summary()).uptime_seconds)


async def _load() -> str:
    s = await system_summary()
    return f"load {s.load_1:.2f}"


def _feature(host: Any, module: str, kind: str):
    import importlib
    try:
        return host.feature(getattr(importlib.import_module(f"spbot.features.{module}"), kind))
    except LookupError:
        return None


async def _worst_disk(host: Any) -> str:
    disk = _feature(host, "disk", "DiskFeature")
    if disk is None:
        return "not watched"
    usages = [u for u in await disk.usage() if u.available]
    if not usages:
        return "none readable"
    worst = max(usages, key=lambda u: u.percent)
    return f"{worst.mountpoint} {worst.percent:.0f}%"


async def _last_backup(host: Any) -> str:
    backup = _feature(host, "backup", "BackupFeature")
    if backup is None or not backup.settings.services:
        return "none set up"
    ages = []
    for service in backup.settings.services:
        row = await backup.backups.log.last_success(service)
        if row is None:
            return f"{service} never"
        ages.append(time.time() - row["ended"])
    return f"{human_duration(max(ages))} ago"


async def _pending(host: Any) -> str:
    last = await host.store.get(UPGRADE_CHECK_KEY)
    if not last:
        return "not checked"
    return str(last.get("summary", "?"))[:60]


async def _failing(host: Any) -> str:
    services = _feature(host, "services", "ServicesFeature")
    if services is None or not services.watch.systemd_running():
        return "not checked"
    failed = await services.watch.failed()
    return ", ".join(u.unit for u in failed) if failed else "none"
