"""What backups say in chat: progress lines, snapshot lists, stats, restore, drill and retention reports,
the set-up check, B2 set-up, the daily digest and the result of a backup run. Times in the bot's zone."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from spbot.context import UserError
from spbot.render import Item, Reply, human_bytes, human_duration, items
from spbot.system.restic import BackupStatus, ForgetResult, Snapshot

from .model import B2Setup, DrillResult, Outcome, RestoreReport, RetentionReport, StatsReport, reason_of, service_of

if TYPE_CHECKING:
    from .service import Backups


def status_line(label: str, s: BackupStatus) -> str:
    files = f"{s.files_done:,}/{s.total_files:,} files" if s.total_files else f"{s.files_done:,} files"
    parts = [label, files, f"{human_bytes(s.bytes_done)} of {human_bytes(s.total_bytes)}"]
    if s.seconds_remaining:
        parts.append(f"ETA {human_duration(s.seconds_remaining)}")
    return " · ".join(parts)



def local_time(value: datetime | float, tz: str) -> str:
    when = datetime.fromtimestamp(value, timezone.utc) if isinstance(value, (int, float)) else value
    return when.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def render_list(snapshots: list[Snapshot], sizes: dict[str, int], tz: str, per_service: int = 10) -> Reply:
    if not snapshots:
        return Reply.text("no snapshots yet — run !backup now")
    by_service: dict[str, list[Snapshot]] = {}
    for s in snapshots:
        by_service.setdefault(service_of(s) or "(other)", []).append(s)
    reply: Reply | None = None
    for name in sorted(by_service):
        shown = by_service[name][-per_service:]
        entries = [Item(s.short_id, [local_time(s.time, tz), reason_of(s),
                                     human_bytes(sizes[s.short_id]) if s.short_id in sizes else "size ?"])
                   for s in reversed(shown)]
        more = len(by_service[name]) - len(shown)
        title = f"{name}: {len(by_service[name])} snapshot(s)" + (f", newest {len(shown)} shown" if more else "")
        part = items(title, entries)
        reply = part if reply is None else reply + part
    return reply


def render_stats(report: StatsReport, tz: str) -> Reply:
    lines = [f"Repository {report.location}: {report.snapshots} snapshot(s), "
             f"{human_bytes(report.stored_size)} stored for {human_bytes(report.restore_size)} of snapshots "
             f"(dedup {report.dedup_ratio:.1f}×)"]
    now = time.time()
    for name, row in report.last.items():
        if row is None:
            lines.append(f"⚠️ {name}: no successful backup yet")
        else:
            lines.append(f"✅ {name}: last success {local_time(row['ended'], tz)} "
                         f"({human_duration(now - row['ended'])} ago, {row['reason']}, snapshot "
                         f"{(row['snapshot_id'] or '')[:8]})")
    if report.b2_usage is not None:
        u = report.b2_usage
        lines.append(f"Backblaze B2 bucket {u.bucket}: {human_bytes(u.total_bytes)} in {u.file_count:,} files; "
                     f"{human_bytes(u.stored_bytes)} billed including deleted data kept "
                     f"{report.keep_deleted_days} days")
    elif report.b2_error:
        lines.append(f"⚠️ Backblaze B2 usage unavailable: {report.b2_error}")
    if report.warning:
        lines.append(report.warning)
    return Reply.text("\n".join(lines))


def render_restore(report: RestoreReport, tz: str) -> Reply:
    s = report.snapshot
    head = (f"✅ restored {report.service} from snapshot {s.short_id} ({local_time(s.time, tz)}, {reason_of(s)})")
    lines = [head]
    for p in report.paths:
        where = f"into {p.live}" if report.into_place else f"{p.live} → copied to {p.copy}"
        lines.append(f"   {where}: {p.files:,} files, {human_bytes(p.size)} — verified (file count and sizes "
                     "match the snapshot; restic re-read the content)")
    if report.into_place:
        if report.pre_restore:
            lines.append(f"   the data it replaced is in snapshot {report.pre_restore} (reason pre-restore)")
        if report.database:
            lines.append(f"   {report.database}")
        if report.units:
            lines.append(f"   stopped and started again: {', '.join(report.units)}")
        if report.health:
            lines.append(f"   afterwards: {report.health}")
    else:
        lines.append("   the live data was not touched")
    lines += [f"   ⚠️ {w}" for w in report.warnings]
    return Reply.text("\n".join(lines))


def render_drill(results: list[DrillResult]) -> Reply:
    lines = []
    for r in results:
        snap = f"snapshot {r.snapshot.short_id}" if r.snapshot else ""
        if r.error:
            lines.append(f"❌ {r.service}: drill failed: {r.error}")
        elif r.mismatches:
            lines.append(f"❌ {r.service}: {len(r.mismatches)} of {r.checked} sampled files differ from {snap} "
                         f"although unchanged since: {', '.join(r.mismatches[:5])}")
        elif not r.checked:
            lines.append(f"➖ {r.service}: nothing to compare ({r.files} files in {snap}, none unchanged since)")
        else:
            lines.append(f"✅ {r.service}: {r.checked} files restored from {snap} match the live files "
                         f"({r.comparable} of {r.files} unchanged since the snapshot)")
    return Reply.text("🔎 restore drill\n" + "\n".join(lines))


def render_forget(result: RetentionReport) -> Reply:
    def part(label: str, r: ForgetResult) -> str:
        return f"{label}: kept {len(r.kept)}, removed {len(r.removed)}"
    text = " · ".join([part("automatic", result.auto),
                       part(f"manual (the last {result.keep_manual} per service)", result.manual),
                       part(f"pre-restore ({result.keep_pre_restore_days} days)", result.pre_restore)])
    pruned = result.auto.pruned and result.removed
    return Reply.text(f"🧹 retention applied — {text}" + (" (unused data pruned)" if pruned else ""))


def render_forgotten(snapshot: Snapshot, service: str, tz: str) -> Reply:
    return Reply.text(f"🗑 snapshot {snapshot.short_id} of {service} ({local_time(snapshot.time, tz)}, "
                      f"{reason_of(snapshot)}) is gone; the data no other snapshot uses was removed.")


def render_setup(lines: list[tuple[str, str]]) -> Reply:
    icons = {"ok": "✅", "warn": "⚠️", "fail": "❌"}
    body = "\n".join(f"{icons[m]} {t}" for m, t in lines)
    nxt = next((t for m, t in lines if m == "fail"), None)
    body += "\nNext: " + ("fix the ❌ line above." if nxt else "!backup now to make the first snapshots.")
    return Reply.text("Backup set-up\n" + body)


async def render_digest(backups: "Backups", now: float, tz: str) -> Reply | None:
    runs = await backups.log.since(now - 86400)
    names = sorted(backups.services)
    if not names:
        return None
    parts = []
    for name in names:
        mine = [r for r in runs if r["service"] == name]
        good = [r for r in mine if r["ok"]]
        bad = [r for r in mine if not r["ok"]]
        if good:
            added = sum(r["data_added"] for r in good)
            text = f"{name} ✅ {len(good)}× (last {local_time(good[-1]['ended'], tz)}, +{human_bytes(added)})"
        else:
            text = f"{name} ⚠️ no backup"
        if bad:
            text += f", ❌ {len(bad)} failed"
        parts.append(text)
    warning = backups.same_disk_warning()
    return Reply.text("🗄 backups, last 24 h: " + " · ".join(parts) + (f"\n{warning}" if warning else ""))


def reply_for(outcomes: list[Outcome], *, each_said: bool = False) -> Reply:
    """The final result of a chat backup: every service's line, or only a summary when each service's
    line was already posted. Raises UserError when a service failed."""
    failed = [o for o in outcomes if not o.ok]
    names = ", ".join(o.service for o in outcomes)
    if not failed:
        return Reply.text(f"✅ backup done: {names}" if each_said else "\n".join(o.line() for o in outcomes))
    if not each_said:
        raise UserError("\n".join(o.line() for o in outcomes).removeprefix("❌ "))
    first = next(o for o in failed if not o.skipped)
    raise UserError(f"backup failed for {', '.join(o.service for o in failed)} "
                    f"({len(outcomes) - len(failed)} of {len(outcomes)} backed up)", f"What to do: {first.todo}")


def render_b2_setup(done: B2Setup, backups: "Backups") -> str:
    state = "created" if done.created else "already there"
    text = (f"✅ Backblaze B2 is ready: private bucket {done.bucket} ({state}); deleted data is kept "
            f"{done.keep_deleted_days} days; key '{done.key_name}' can use only this bucket and was saved in "
            f"{done.key_file} (mode 600, not shown here).")
    repo = backups.settings.repository
    if getattr(repo, "kind", "") == "b2" and getattr(repo, "bucket", "") == done.bucket:
        return text + "\nNext: !backup setup init, then !backup now."
    return text + (f"\nNext: set [backup.repository] kind = \"b2\" and bucket = \"{done.bucket}\" in the config, "
                   "restart the bot, then !backup setup init.")
