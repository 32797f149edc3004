"""!disk: usage of every real filesystem with its 7-day trend and forecast; !disk <path>: one mount and
the biggest directories under the path. Sampling and alerts are in spbot/diskwatch.py."""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Annotated

from spbot import diskwatch
from spbot.context import Context, UserError
from spbot.diskwatch import DiskSettings, UsageUnavailable, read_usage
from spbot.registry import Arg, command, on_startup
from spbot.render import Reply, bar, human_bytes, human_duration, table
from spbot.system import disks
from spbot.system.disks import DirSizes, MountUsage
from spbot.system.forecast import DAY, Trend, sparkline, trend

SPARK_WIDTH = 14          # half a day per character over 7 days
HEADERS = ["mount", "device", "size", "used", "free", "use", "7 days", "trend"]
RIGHT = (2, 3, 4, 5)


@on_startup
async def setup_disk(bot) -> None:
    await diskwatch.install(bot)
    bot.status_sections.append(status_lines)


@command("disk", help="disk usage of every filesystem, 7-day trend, days until full; "
                      "!disk <path>: that mount and its biggest directories")
async def disk(ctx: Context, path: Annotated[Path | None, Arg(help="a mount or directory, e.g. /srv")] = None
               ) -> Reply:
    settings = diskwatch.settings_of(ctx.bot)
    if path is None:
        usages = await _usages(settings)
        return await overview(ctx.bot, usages, settings, time.time())
    return await one_mount(ctx.bot, settings, path)


# --------------------------------------------------------------------------- reading

async def _usages(settings: DiskSettings, mount: str | None = None) -> list[MountUsage]:
    try:
        return await read_usage(settings, mount)
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


async def _histories(bot, usages: list[MountUsage], now: float) -> dict[str, list]:
    samples = diskwatch.watch_of(bot).samples
    return {u.mountpoint: await samples.history(u.mountpoint, now - diskwatch.TREND_DAYS * DAY)
            for u in usages}


# --------------------------------------------------------------------------- rendering

def _trend_text(result: Trend) -> str:
    return "collecting data" if result.kind == "unknown" else result.text


def _spark(history: list, now: float) -> str:
    if not history:
        return ""
    # +1: a sample taken exactly now belongs in the last bucket; a no-break space keeps the time
    # axis in HTML, where plain spaces would collapse
    return sparkline(history, now + 1, days=diskwatch.TREND_DAYS, width=SPARK_WIDTH, empty="\u00a0")


def _row(usage: MountUsage, history: list, now: float, show_inodes: float | None) -> list[str]:
    mount = usage.mountpoint + (" (ro)" if usage.read_only else "")
    if not usage.available:
        row = [mount, usage.device, "—", "—", "—", "no answer", "", usage.error or "unreadable"]
    else:
        result = trend(history, now, diskwatch.TREND_DAYS)
        row = [mount, usage.device, human_bytes(usage.total), human_bytes(usage.used),
               human_bytes(usage.free), f"{bar(usage.percent / 100, 8)} {usage.percent:3.0f}%",
               _spark(history, now), _trend_text(result)]
    if show_inodes is not None:
        high = usage.inodes_percent is not None and usage.inodes_percent >= show_inodes
        row.append(f"{usage.inodes_percent:.0f}%" if high else "")
    return row


def usage_table(usages: list[MountUsage], histories: dict[str, list], settings: DiskSettings,
                now: float, title: str) -> Reply:
    """The HTML table and the aligned plain text; an inodes column only when one is high."""
    high = any(u.inodes_percent is not None and u.inodes_percent >= settings.inode_show_percent
               for u in usages)
    show = settings.inode_show_percent if high else None
    headers = HEADERS + (["inodes"] if high else [])
    rows = [_row(u, histories.get(u.mountpoint, []), now, show) for u in usages]
    return table(headers, rows, title=title, align_right=RIGHT + ((8,) if high else ()))


async def overview(bot, usages: list[MountUsage], settings: DiskSettings, now: float) -> Reply:
    if not usages:
        return Reply.text("No filesystems to show: every mount is hidden by [disk] hide_mounts "
                          "or is a pseudo filesystem.")
    histories = await _histories(bot, usages, now)
    count = f"{len(usages)} filesystem{'s' if len(usages) != 1 else ''}"
    reply = usage_table(usages, histories, settings, now, f"Disks on {socket.gethostname()} ({count})")
    notes = _notes(usages, settings)
    return reply + Reply.text("\n".join(notes)) if notes else reply


def _notes(usages: list[MountUsage], settings: DiskSettings) -> list[str]:
    notes = []
    for u in usages:
        if not u.available:
            continue
        limits = settings.limits(u.mountpoint)
        if u.percent >= limits.critical:
            notes.append(f"🚨 {u.mountpoint} is almost full: !disk {u.mountpoint}, then !cleanup")
        elif u.percent >= limits.warn:
            notes.append(f"⚠️ {u.mountpoint} is filling up: !disk {u.mountpoint}, then !cleanup")
    return notes


async def one_mount(bot, settings: DiskSettings, path: Path) -> Reply:
    where = await _checked_dir(settings, path)
    usages = await _usages(settings, where)
    now = time.time()
    histories = await _histories(bot, usages, now)
    mounted_at = usages[0].mountpoint if usages else where
    title = where if mounted_at == where else f"{where} (on the filesystem mounted at {mounted_at})"
    reply = usage_table(usages, histories, settings, now, title)
    for usage in usages:
        detail = _trend_detail(trend(histories.get(usage.mountpoint, []), now,
                                               diskwatch.TREND_DAYS), usage)
        if detail:
            reply = reply + Reply.text(detail)
    sizes = await disks.biggest_dirs(where, depth=settings.du_depth, time_budget=settings.du_time_budget,
                                     top_n=settings.du_top)
    return reply + biggest_dirs_reply(sizes, settings)


def _trend_detail(result: Trend, usage: MountUsage) -> str:
    if result.kind == "full" and result.full_at is not None:
        day = time.strftime("%Y-%m-%d", time.gmtime(result.full_at))
        return (f"Trend: +{human_bytes(result.bytes_per_day)} per day; {result.text} (around {day}) "
                f"at this rate.")
    if result.kind == "shrinking":
        return f"Trend: {human_bytes(-result.bytes_per_day)} per day less used."
    if result.kind == "stable":
        return "Trend: stable over the last 7 days."
    return ""


def biggest_dirs_reply(sizes: DirSizes, settings: DiskSettings) -> Reply:
    head = (f"Biggest directories under {sizes.path} (depth {settings.du_depth}; "
            f"{human_bytes(sizes.total_bytes)} in {sizes.files_scanned:,} files, "
            f"{human_duration(sizes.elapsed)}):")
    if sizes.error:
        head += f"\n⚠️ {sizes.error}"
    if not sizes.entries:
        return Reply.text(head + "\nno directories below it")
    total = max(sizes.total_bytes, 1)
    rows = [[entry.path, human_bytes(entry.bytes), f"{bar(entry.bytes / total, 8)} {100 * entry.bytes / total:3.0f}%"]
            for entry in sizes.entries]
    reply = table(["directory", "size", "share"], rows, title=head, align_right=(1, 2))
    notes = []
    if sizes.partial and not sizes.error:
        notes.append(f"Stopped after {human_duration(settings.du_time_budget)}: the sizes are at least these.")
    if sizes.unreadable:
        notes.append(f"{sizes.unreadable} entries could not be read.")
    return reply + Reply.text(" ".join(notes)) if notes else reply


# --------------------------------------------------------------------------- !status

async def status_lines(bot) -> list[str]:
    settings = diskwatch.settings_of(bot)
    try:
        usages = await read_usage(settings)
    except (UsageUnavailable, disks.ProbeTimeout) as exc:
        return [f"disks: cannot read the usage ({exc})"]
    parts = []
    for u in usages:
        if not u.available:
            parts.append(f"{u.mountpoint} not answering ⚠️")
            continue
        limits = settings.limits(u.mountpoint)
        flag = " 🚨" if u.percent >= limits.critical else " ⚠️" if u.percent >= limits.warn else ""
        parts.append(f"{u.mountpoint} {u.percent:.0f}% ({human_bytes(u.free)} free){flag}")
    return ["disks: " + (" · ".join(parts) or "none shown")]
