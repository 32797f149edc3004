"""How !disk and !status show the disks: the usage table with its 7-day sparkline and trend, the notes
under it, the biggest directories of one path, and the one-line summary."""
from __future__ import annotations

import socket
import time

from spbot.render import Reply, bar, human_bytes, human_duration, table
from spbot.system.disks import DirSizes, MountUsage
from spbot.system.forecast import Trend, sparkline, trend

from .settings import TREND_DAYS, DiskSettings

SPARK_WIDTH = 14          # half a day per character over 7 days
HEADERS = ["mount", "device", "size", "used", "free", "use", "7 days", "trend"]
RIGHT = (2, 3, 4, 5)


def _trend_text(result: Trend) -> str:
    return "collecting data" if result.kind == "unknown" else result.text


def _spark(history: list, now: float) -> str:
    if not history:
        return ""
    # +1: a sample taken exactly now belongs in the last bucket; a no-break space keeps the time
    # axis in HTML, where plain spaces would collapse
    return sparkline(history, now + 1, days=TREND_DAYS, width=SPARK_WIDTH, empty="\u00a0")


def _row(usage: MountUsage, history: list, now: float, show_inodes: float | None) -> list[str]:
    mount = usage.mountpoint + (" (ro)" if usage.read_only else "")
    if not usage.available:
        row = [mount, usage.device, "—", "—", "—", "no answer", "", usage.error or "unreadable"]
    else:
        result = trend(history, now, TREND_DAYS)
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


def overview_reply(usages: list[MountUsage], histories: dict[str, list], settings: DiskSettings,
                   now: float) -> Reply:
    if not usages:
        return Reply.text("No filesystems to show: every mount is hidden by [disk] hide_mounts "
                          "or is a pseudo filesystem.")
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


def one_mount_reply(where: str, usages: list[MountUsage], histories: dict[str, list],
                    settings: DiskSettings, now: float, sizes: DirSizes) -> Reply:
    mounted_at = usages[0].mountpoint if usages else where
    title = where if mounted_at == where else f"{where} (on the filesystem mounted at {mounted_at})"
    reply = usage_table(usages, histories, settings, now, title)
    for usage in usages:
        detail = _trend_detail(trend(histories.get(usage.mountpoint, []), now, TREND_DAYS), usage)
        if detail:
            reply = reply + Reply.text(detail)
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
