"""The upgrade replies: pending updates, an upgrade's or a rollback's result, the generations list,
and the reboot line under each."""
from __future__ import annotations

from typing import TYPE_CHECKING

from spbot.render import Item, Reply, human_duration, items
from spbot.system.osinfo import OsInfo

from .drivers.results import CheckResult, Generation, RebootStatus, UpgradeResult

if TYPE_CHECKING:
    from spbot.jobs import Job

SHOWN_CHANGES = 15
SHOWN_PENDING = 10


def reboot_line(status: RebootStatus) -> str:
    if not status.required:
        return "No reboot needed."
    why = f" ({', '.join(status.reasons[:5])})" if status.reasons else ""
    return f"🔁 A reboot is needed{why}: send !reboot when it suits you."


def deferred_cancel_line(job: "Job | None") -> list[str]:
    if job is None or job.cancelled_by is None:
        return []
    return [f"(The cancel from {job.cancelled_by} came while the system was being changed, so the "
            "work was finished first.)"]


def pending_key(result: CheckResult) -> list[str]:
    """The pending set, for telling a new one from one already posted."""
    return sorted([f"{u.name} {u.new or ''}".strip() for u in result.updates] +
                  [f"{name} (remove)" for name in result.removals])


def pending_summary(result: CheckResult) -> str:
    if not result.pending:
        return "up to date"
    if result.family == "nixos":
        built = sum(1 for u in result.updates if u.origin == "build")
        size = f" ({result.download})" if result.download else ""
        return f"{built} to build, {len(result.updates) - built} to download{size}"
    security = len(result.security_updates)
    parts = [f"{len(result.updates)} update(s) pending" + (f" ({security} security)" if security else "")]
    if result.removals:
        parts.append(f"{len(result.removals)} to remove")
    return ", ".join(parts)


def render_check(info: OsInfo, result: CheckResult, show_all: bool = False) -> Reply:
    """The pending updates: the security ones first, the first SHOWN_PENDING (all with `show_all`),
    one per line."""
    warnings = [f"⚠️ {w}" for w in result.warnings[:3]]
    if not result.pending:
        return Reply.text("\n".join([f"✅ {info.pretty_name} is up to date.",
                                     reboot_line(result.reboot), *warnings]))
    title = f"📦 {info.pretty_name}: {pending_summary(result)}."
    ordered = sorted(result.updates, key=lambda u: not u.security)     # stable: security first
    shown = ordered if show_all else ordered[:SHOWN_PENDING]
    if result.family == "nixos":
        entries = [Item(u.name, [u.origin or ""]) for u in shown]
    else:
        entries = [Item(u.name + (" 🔒" if u.security else ""), [f"{u.current or '(new)'} → {u.new or ''}"])
                   for u in shown]
    more = len(result.updates) - len(shown)
    after = ([f"… and {more} more: !upgrade check --all lists every one."] if more > 0 else []) + \
        (["🔒 security update"] if any(u.security for u in shown) else []) + \
        ([f"To remove: {', '.join(result.removals)}"] if result.removals else []) + \
        [reboot_line(result.reboot), "Send !upgrade to install (needs another admin's approval).",
         *warnings]
    return items(title, entries) + Reply.text("\n".join(after))


def render_upgrade(info: OsInfo, result: UpgradeResult, backup_line: str, job: "Job | None") -> Reply:
    took = human_duration(result.duration)
    if result.family == "nixos":
        what = (f"generation {result.generation_before} → {result.generation_after}" if result.changed
                else f"nothing changed, still generation {result.generation_after}")
        lines = [f"✅ Upgrade of {info.pretty_name} done in {took}: {what}."]
    elif not result.changed:
        lines = [f"✅ {info.pretty_name} was already up to date (nothing changed, {took})."]
    else:
        s = result.summary
        counts = (f"{s.upgraded} upgraded, {s.newly_installed} newly installed, {s.removed} removed"
                  if s else f"{len(result.changes)} package(s) changed")
        lines = [f"✅ Upgrade of {info.pretty_name} done in {took}: {counts}."]
        lines += [f"  {c.name} {c.old or '(new)'} → {c.new or '(removed)'}"
                  for c in result.changes[:SHOWN_CHANGES]]
        if len(result.changes) > SHOWN_CHANGES:
            lines.append(f"  … and {len(result.changes) - SHOWN_CHANGES} more")
    lines += [reboot_line(result.reboot), backup_line[0].upper() + backup_line[1:] + ".",
              *deferred_cancel_line(job)]
    return Reply.text("\n".join(lines))


def render_rollback(info: OsInfo, result: UpgradeResult, job: "Job | None") -> Reply:
    return Reply.text("\n".join([
        f"↩️ Rolled back {info.pretty_name} in {human_duration(result.duration)}: generation "
        f"{result.generation_before} → {result.generation_after}.", reboot_line(result.reboot),
        *deferred_cancel_line(job)]))


def render_generations(info: OsInfo, found: list[Generation]) -> Reply:
    entries = [Item(f"generation {g.number}" + (" (current)" if g.current else ""),
                    [f"built {g.created:%Y-%m-%d %H:%M}", f"NixOS {g.nixos_version}" if g.nixos_version else ""])
               for g in reversed(found)]
    return items(f"System generations of {info.pretty_name}, newest first (!rollback goes back one):", entries)
