"""!disk: usage of every real filesystem with its 7-day trend and forecast; !disk <path>: one mount and
the biggest directories under the path. The sampler, alerts and rendering are in spbot/features/disk/."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

from spbot.context import Context, UserError
from spbot.features.disk import DiskFeature, DiskSettings
from spbot.features.disk.render import one_mount_reply, overview_reply
from spbot.features.disk.usage import UsageUnavailable
from spbot.registry import Arg, command
from spbot.render import Reply
from spbot.system import disks
from spbot.system.disks import MountUsage


@command("disk", group="disks", help="disk usage, 7-day trend, days until full (on many filesystems the ones that "
                      "need attention; --all: every one); !disk <path>: that mount and its biggest directories")
async def disk(ctx: Context, path: Annotated[Path | None, Arg(help="a mount or directory, e.g. /srv")] = None,
               *, all: Annotated[bool, Arg("every filesystem, also when there are many")] = False
               ) -> Reply:
    feature = ctx.feature(DiskFeature)
    if path is None:
        usages = await _usages(feature)
        now = time.time()
        return overview_reply(usages, await feature.histories(usages, now), feature.settings, now,
                              show_all=all)
    return await one_mount(feature, path)


async def _usages(feature: DiskFeature, mount: str | None = None) -> list[MountUsage]:
    try:
        return await feature.usage(mount)
    except (UsageUnavailable, disks.ProbeTimeout) as exc:
        raise UserError(f"I could not read the disk usage: {exc}",
                        "try again in a minute; if it keeps failing, a mount may be hanging on the server")


async def _checked_dir(settings: DiskSettings, path: Path) -> str:
    if not path.is_absolute():
        raise UserError(f"{path} is not an absolute path", "give a path from the root, e.g. !disk /srv")
    where = os.path.normpath(str(path))
    try:
        is_dir = await disks.in_thread(os.path.isdir, where, timeout=settings.probe_timeout, key=where)
    except disks.ProbeTimeout as exc:
        raise UserError(f"{where} does not answer: {exc}", "the disk or network share behind it may hang")
    if not is_dir:
        raise UserError(f"{where} is not a directory on the server", "send !disk to see the mounts")
    return where


async def one_mount(feature: DiskFeature, path: Path) -> Reply:
    settings = feature.settings
    where = await _checked_dir(settings, path)
    usages = await _usages(feature, where)
    now = time.time()
    histories = await feature.histories(usages, now)
    sizes = await disks.biggest_dirs(where, depth=settings.du_depth, time_budget=settings.du_time_budget,
                                     top_n=settings.du_top)
    return one_mount_reply(where, usages, histories, settings, now, sizes)
