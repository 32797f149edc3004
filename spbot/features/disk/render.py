"""How !disk and !status show the disks: one short line per filesystem (bar, free space, 7-day sparkline
and trend), on a large machine only the ones that need attention and a summary, the notes under it, the
biggest directories of one path, and the one-line summary."""
from __future__ import annotations

import socket
import time
from dataclasses import replace

from spbot.render import Item, Reply, bar, human_bytes, human_duration, items
from spbot.system.disks import DirSizes, MountUsage
from spbot.system.forecast import Trend, sparkline, trend

from .settings import TREND_DAYS, DiskSettings

SPARK_WIDTH = 14          # half a day per character over 7 days
SUMMARY_AFTER = 8         # more filesystems than this: the ones that need attention, then a summary
SHOWN_ATTENTION = 10      # at most this many of those, the rest behind !disk --all
SHOWN_NOTES = 3           # more "filling up" notes than this become one line


def _trend_text(result: Trend) -> str:
    return "collecting data" if result.kind == "unknown" else result.text


def _spark(history: list, now: float) -> str:
    if not history:
        return ""
    # +1: a sample taken exactly now belongs in the last bucket; a no-break space keeps the time
    # axis in HTML, where plain spaces would collapse
    return sparkline(history, now + 1, days=TREND_DAYS, width=SPARK_WIDTH, empty="\u00a0")


def _inodes_high(usage: MountUsage, settings: DiskSettings) -> bool:
    return usage.inodes_percent is not None and usage.inodes_percent >= settings.inode_show_percent


def mount_item(usage: MountUsage, history: list, now: float, settings: DiskSettings,
               compact: bool = False) -> Item:
    """One filesystem on one short line: mount, bar and percent, free space, sparkline and trend
    (`compact`: no bar and sparkline, for a list of every filesystem on a large machine)."""
    mount = usage.mountpoint + (" (ro)" if usage.read_only else "")
    if not usage.available:
        return Item(mount, ["⚠️ no answer", usage.error or "unreadable"])
    spark = "" if compact else _spark(history, now)
    parts = [("" if compact else f"{bar(usage.percent / 100, 8)} ") + f"{usage.percent:.0f}%",
             f"{human_bytes(usage.free)} free of {human_bytes(usage.total)}",
             (spark + " " if spark.strip() else "") + _trend_text(trend(history, now, TREND_DAYS))]
    if _inodes_high(usage, settings):
        parts.append(f"inodes {usage.inodes_percent:.0f}%")
    return Item(mount, parts)


def needs_attention(usage: MountUsage, history: list, now: float, settings: DiskSettings) -> bool:
    """Full or filling (at the warning threshold), full soon by the trend, many inodes, or no answer."""
    if not usage.available or _inodes_high(usage, settings):
        return True
    limits = settings.limits(usage.mountpoint)
    if usage.percent >= limits.warn:
        return True
    result = trend(history, now, TREND_DAYS)
    return result.kind == "full" and result.days_until_full is not None \
        and result.days_until_full <= max(limits.forecast_days, TREND_DAYS)


def usage_list(usages: list[MountUsage], histories: dict[str, list], settings: DiskSettings,
               now: float, title: str) -> Reply:
    """Every filesystem, one line each (compact when there are many: one message holds them all)."""
    compact = len(usages) > SUMMARY_AFTER
    return items(title, [mount_item(u, histories.get(u.mountpoint, []), now, settings, compact)
                         for u in usages])


def overview_reply(usages: list[MountUsage], histories: dict[str, list], settings: DiskSettings,
                   now: float, show_all: bool = False) -> Reply:
    """Every filesystem when there are few (or `show_all`); on a large machine the ones that need
    attention, fullest first, and a summary of the rest."""
    if not usages:
        return Reply.text("No filesystems to show: every mount is hidden by [disk] hide_mounts "
                          "or is a pseudo filesystem.")
    title = f"Disks on {socket.gethostname()} ({_count(len(usages))})"
    if show_all or len(usages) <= SUMMARY_AFTER:
        reply = usage_list(usages, histories, settings, now, title)
    else:
        reply = _summary(usages, histories, settings, now, title)
    notes = _notes(usages, settings)
    return reply + Reply.text("\n".join(notes)) if notes else reply


def _count(n: int) -> str:
    return f"{n} filesystem{'s' if n != 1 else ''}"


def _summary(usages: list[MountUsage], histories: dict[str, list], settings: DiskSettings,
             now: float, title: str) -> Reply:
    urgent = sorted((u for u in usages if needs_attention(u, histories.get(u.mountpoint, []), now, settings)),
                    key=lambda u: (u.available, -u.percent))
    shown = urgent[:SHOWN_ATTENTION]
    rest = [u for u in usages if u not in urgent and u.available]
    lines = []
    if len(urgent) > len(shown):
        lines.append(f"… and {len(urgent) - len(shown)} more that need attention.")
    if rest:
        fullest = max(rest, key=lambda u: u.percent)
        lines.append(f"{_count(len(rest))} fine: below their warning level and not filling up "
                     f"(fullest {fullest.mountpoint} at {fullest.percent:.0f}%).")
    lines.append("!disk --all lists every one.")
    head = f"{title}: {len(urgent)} need{'s' if len(urgent) == 1 else ''} attention" if urgent \
        else f"{title}: all fine"
    entries = [mount_item(u, histories.get(u.mountpoint, []), now, settings) for u in shown]
    return items(head, entries, more="\n".join(lines))


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
    if len(notes) > SHOWN_NOTES:      # the list above already shows each one
        return [f"⚠️ {len(notes)} filesystems are filling up or almost full: !disk <mount> shows what "
                "takes the space, then !cleanup frees some."]
    return notes


def one_mount_reply(where: str, usages: list[MountUsage], histories: dict[str, list],
                    settings: DiskSettings, now: float, sizes: DirSizes) -> Reply:
    mounted_at = usages[0].mountpoint if usages else where
    title = where if mounted_at == where else f"{where} (on the filesystem mounted at {mounted_at})"
    entries = [replace(mount_item(u, histories.get(u.mountpoint, []), now, settings), note=_device(u))
               for u in usages]
    reply = items(title, entries)
    for usage in usages:
        detail = _trend_detail(trend(histories.get(usage.mountpoint, []), now, TREND_DAYS), usage)
        if detail:
            reply = reply + Reply.text(detail)
    return reply + biggest_dirs_reply(sizes, settings)


def _device(usage: MountUsage) -> str:
    return "on " + (usage.device or "an unknown device") + (f" ({usage.fstype})" if usage.fstype else "")


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
    entries = [Item(_below(entry.path, sizes.path), [
        human_bytes(entry.bytes), f"{bar(entry.bytes / total, 8)} {100 * entry.bytes / total:.0f}%"])
        for entry in sizes.entries]
    reply = items(head, entries)
    notes = []
    if sizes.partial and not sizes.error:
        notes.append(f"Stopped after {human_duration(settings.du_time_budget)}: the sizes are at least these.")
    if sizes.unreadable:
        notes.append(f"{sizes.unreadable} entries could not be read.")
    return reply + Reply.text(" ".join(notes)) if notes else reply


def _below(path: str, base: str) -> str:
    """`path` relative to `base` (shorter on a phone), or whole when it is not below it."""
    prefix = base.rstrip("/") + "/"
    return path[len(prefix):] if path.startswith(prefix) else path


def status_line(usages: list[MountUsage], settings: DiskSettings) -> str:
    parts = []
    for u in usages:
        if not u.available:
            parts.append(f"{u.mountpoint} not answering ⚠️")
            continue
        limits = settings.limits(u.mountpoint)
        flag = " 🚨" if u.percent >= limits.critical else " ⚠️" if u.percent >= limits.warn else ""
        parts.append(f"{u.mountpoint} {u.percent:.0f}% ({human_bytes(u.free)} free){flag}")
    return "disks: " + (" · ".join(parts) or "none shown")
