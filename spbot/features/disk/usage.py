"""Where the disk usage comes from: psutil (spbot.system.disks, in threads) unless `[disk] usage_source`
names a JSON file, the boundary where tests and unusual set-ups feed usage in."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from spbot.system import disks
from spbot.system.disks import MountUsage

from .settings import DiskSettings


class UsageUnavailable(Exception):
    """The usage source could not be read; the message is safe to show."""


def _usage_from_json(item: dict[str, Any]) -> MountUsage:
    usage = MountUsage.model_validate(item)
    if "percent" not in item and usage.total:
        usage.percent = round(100.0 * usage.used / max(usage.used + usage.free, 1), 1)
    if usage.inodes_percent is None and usage.inodes_total and usage.inodes_used is not None:
        usage.inodes_percent = round(100.0 * usage.inodes_used / usage.inodes_total, 1)
    return usage


def read_usage_file(path: Path) -> list[MountUsage]:
    """Blocking: `{"mounts": [{mountpoint, total, used, free, ...}]}` or a bare list of those."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise UsageUnavailable(f"usage file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageUnavailable(f"usage file {path}: not valid JSON ({exc})") from None
    items = data.get("mounts", []) if isinstance(data, dict) else data
    try:
        return sorted((_usage_from_json(i) for i in items), key=lambda u: u.mountpoint)
    except (ValidationError, TypeError, AttributeError) as exc:
        raise UsageUnavailable(f"usage file {path}: unexpected content ({exc})") from None


async def read_usage(settings: DiskSettings, mount: str | None = None) -> list[MountUsage]:
    """Usage of every real filesystem, or of the one holding `mount` (psutil or the usage file)."""
    if settings.usage_source is None:
        try:
            return await disks.disk_usage(settings, mount)
        except disks.ProbeTimeout as exc:
            raise UsageUnavailable(f"the list of mounts {exc}") from None
    usages = await disks.in_thread(read_usage_file, settings.usage_source,
                                   timeout=settings.probe_timeout)
    if mount is None:
        return usages
    holding = [u for u in usages if mount == u.mountpoint
               or mount.startswith(u.mountpoint.rstrip("/") + "/")]
    return sorted(holding, key=lambda u: len(u.mountpoint))[-1:]


def watched(usages: Iterable[MountUsage], settings: DiskSettings) -> list[MountUsage]:
    if not settings.watch_mounts:
        return list(usages)
    wanted = {m.rstrip("/") or "/" for m in settings.watch_mounts}
    return [u for u in usages if u.mountpoint in wanted or wanted.intersection(u.also_mounted_at)]
