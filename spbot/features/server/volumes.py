"""Volumes on this machine: which mount is which provider volume (findmnt and udev by-id links),
whether and how its filesystem can be grown, the new size asked for, and what growing costs."""
from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spbot.providers.cloud_server import VolumeInfo

from ...context import UserError
from ...render import human_duration
from ...system import proc
from .provider import ServerProvider
from .render import Cost
from .settings import ServerConfig

GROWABLE = {"ext2": "resize2fs", "ext3": "resize2fs", "ext4": "resize2fs", "xfs": "xfs_growfs"}
FINDMNT_COLUMNS = "TARGET,SOURCE,FSTYPE,SIZE,USED,AVAIL"


@dataclass(frozen=True)
class Mount:
    """One mounted filesystem as findmnt reports it (sizes in bytes)."""

    target: str
    source: str
    fstype: str
    size: int
    used: int
    avail: int


@dataclass(frozen=True)
class VolumeMount:
    mount: Mount
    volume: VolumeInfo
    whole_disk: bool  # the filesystem is on the volume itself, not on a partition of it


async def mounts(settings: ServerConfig, env: Mapping[str, str] | None = None) -> list[Mount]:
    """Every mounted filesystem (findmnt --json --bytes --list)."""
    try:
        result = await proc.run([settings.findmnt, "--json", "--bytes", "--list", "--output",
                                 FINDMNT_COLUMNS], timeout=30, env=env)
    except proc.ProcError as exc:
        raise UserError(str(exc)) from exc
    if not result.ok:
        raise UserError(f"findmnt failed: {result.tail(3) or f'exit {result.returncode}'}",
                        "Check that util-linux is installed on the server.")
    try:
        return [_mount(entry) for entry in json.loads(result.stdout)["filesystems"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"findmnt gave an answer I cannot read ({type(exc).__name__}).") from exc


def _mount(entry: dict[str, Any]) -> Mount:
    def number(key: str) -> int:
        return int(entry.get(key) or 0)
    return Mount(target=entry["target"], source=entry.get("source") or "",
                 fstype=entry.get("fstype") or "", size=number("size"), used=number("used"),
                 avail=number("avail"))


async def volume_ids_of(provider: ServerProvider, settings: ServerConfig,
                        found: list[Mount]) -> dict[str, int | str]:
    """target → what the by-id link names (volume id at Hetzner, name at DigitalOcean), for the
    mounts that are on one of the provider's volumes."""
    def lookup() -> dict[str, int | str]:
        ids = {m.target: provider.volume_id_for_device(m.source, settings.by_id_dir)
               for m in found if m.source.startswith("/")}
        return {target: volume_id for target, volume_id in ids.items() if volume_id is not None}
    return await asyncio.to_thread(lookup)


async def volume_at(settings: ServerConfig, provider: ServerProvider, mount: str,
                    env: Mapping[str, str] | None = None) -> VolumeMount:
    """The provider's volume mounted at `mount`; UserError saying why when there is none."""
    if not mount.startswith("/"):
        raise UserError(f"“{mount}” is not a mount point.", "Give the full path, e.g. /mnt/data.")
    wanted = mount.rstrip("/") or "/"
    here = next((m for m in await mounts(settings, env) if m.target == wanted), None)
    if here is None:
        raise UserError(f"Nothing is mounted at {mount}.",
                        "See !volume list for the volumes and where they are mounted.")
    volume_id = (await volume_ids_of(provider, settings, [here])).get(here.target)
    label = settings.label
    if volume_id is None:
        raise UserError(f"{mount} ({here.source}) is not a {label} volume.",
                        f"Only {label} volumes can be grown from here; see !volume list.")
    volume = await provider.volume_for_device(here.source, settings.by_id_dir)
    if volume is None:
        raise UserError(f"{mount} is on {label} volume “{volume_id}”, which is not attached to "
                        "the server.", "See !volume list.")
    disk = os.path.realpath(settings.by_id_dir / Path(volume.linux_device).name)
    return VolumeMount(here, volume, os.path.realpath(here.source) == disk)


def grow_problem(found: VolumeMount) -> str | None:
    """Why the filesystem at this mount cannot be grown by the bot, or None."""
    if found.mount.fstype not in GROWABLE:
        return (f"{found.mount.target} is {found.mount.fstype or 'an unknown filesystem'}; "
                "I can grow ext4 and xfs only")
    if not found.whole_disk:
        return (f"{found.mount.target} is on a partition of volume “{found.volume.name}”; "
                "the partition would have to be grown first, which I do not do")
    return None


def is_linked(volume: VolumeInfo, key: int | str) -> bool:
    """Does a by-id link's key (see volume_ids_of) name this volume?"""
    return key in (volume.id, volume.name)


def new_volume_size(settings: ServerConfig, current_gb: int, wanted: str) -> int:
    """`+10` → current + 10 GB; `60` (or `60GB`) → 60 GB. UserError when it is not a growth."""
    match = re.fullmatch(r"(\+)?(\d+)\s*(?:g|gb)?", wanted.strip().lower())
    if match is None:
        raise UserError(f"“{wanted}” is not a size.",
                        "Give +GB to add (e.g. +10) or the new total in GB (e.g. 60).")
    amount = int(match.group(2))
    size = current_gb + amount if match.group(1) else amount
    if size <= current_gb:
        raise UserError(f"The volume is {current_gb} GB already; {size} GB would not grow it.",
                        "Volumes can only grow: ask for more than the current size.")
    if size > settings.max_volume_gb:
        raise UserError(f"{size} GB is more than {settings.label}'s largest volume "
                        f"({settings.max_volume_gb} GB).")
    return size


async def volume_cost_per_gb(settings: ServerConfig, provider: ServerProvider) -> Cost | None:
    """Per GB and month: the provider's price list, else the configured price (before tax),
    else unknown."""
    price = Cost.of(await provider.volume_price())
    if price is None and settings.volume_price_per_gb_month is not None:
        price = Cost(settings.volume_price_per_gb_month, None, settings.currency)
    return price


def grow_argv(settings: ServerConfig, found: VolumeMount) -> list[str]:
    """resize2fs on the device (ext*), xfs_growfs on the mount point (xfs); both work online."""
    mount = found.mount
    if GROWABLE[mount.fstype] == "resize2fs":
        return [settings.resize2fs, "--", mount.source]
    return [settings.xfs_growfs, "--", mount.target]


async def grow_filesystem(settings: ServerConfig, found: VolumeMount,
                          env: Mapping[str, str] | None = None) -> str | None:
    """Grow the filesystem to fill its (already grown) volume; what went wrong, or None."""
    try:
        result = await proc.run(grow_argv(settings, found), timeout=settings.grow_timeout,
                                env=env)
    except proc.ProcError as exc:
        return str(exc)
    if result.timed_out:
        return f"it did not finish within {human_duration(settings.grow_timeout)}"
    if not result.ok:
        return result.tail(3) or f"it ended with exit code {result.returncode}"
    return None
