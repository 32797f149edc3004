"""How !cleanup shows its work: the dry run's estimates, the steps that do not apply here, and what a
run freed (measured on the disks)."""
from __future__ import annotations

from spbot.render import Item, Reply, human_bytes, items
from spbot.system import cleanup
from spbot.system.cleanup import CleanupParams, CleanupReport, Estimate

NOT_HERE = {"nix": "not NixOS", "journal": "no journalctl", "logs": "no log directory",
            "apt": "not Debian", "old-root": "no /old-root"}


def size_text(estimate: Estimate) -> str:
    if estimate.bytes is None:
        return "?"
    return human_bytes(estimate.bytes) if estimate.exact else f"~{human_bytes(estimate.bytes)}"


def total(estimates: list[Estimate]) -> tuple[int, bool]:
    known = [e for e in estimates if e.bytes is not None]
    return sum(e.bytes for e in known), all(e.exact for e in known)


def skipped(params: CleanupParams) -> str:
    offered = {s.name for s in cleanup.steps(params)}
    return ", ".join(f"{cls.name} ({NOT_HERE[cls.name]})" for cls in cleanup.STEP_TYPES
                     if cls.name not in offered and (params.enabled is None or cls.name in params.enabled))


def estimates_list(estimates: list[Estimate], title: str) -> Reply:
    return items(title, [Item(e.title, [size_text(e)], f"⚠️ {e.error}" if e.error else e.detail)
                         for e in estimates])


def dry_run_reply(estimates: list[Estimate], params: CleanupParams) -> Reply:
    if not estimates:
        return Reply.text("Nothing to clean here: none of the clean-up steps applies to this server "
                          f"({skipped(params)}).")
    reply = estimates_list(estimates, "Clean-up, dry run (nothing was changed):")
    freed, exact = total(estimates)
    lines = [f"Would free {'about ' if not exact else ''}{human_bytes(freed)}"
             + (" plus what the steps marked ? free" if any(e.bytes is None for e in estimates) else "")
             + ". To do it: !cleanup run (another admin approves)."]
    if not_here := skipped(params):
        lines.append(f"Not here: {not_here}.")
    return reply + Reply.text("\n".join(lines))


def preview_text(estimates: list[Estimate]) -> str:
    if not estimates:
        return "No clean-up step applies to this server: nothing would be done."
    steps = ", ".join(f"{e.title} ({size_text(e)})" for e in estimates)
    freed, exact = total(estimates)
    return f"Steps: {steps}. Would free {'about ' if not exact else ''}{human_bytes(freed)} or more."


def report_reply(report: CleanupReport) -> Reply:
    entries = [Item(r.title, [f"freed {human_bytes(r.freed_bytes)}",
                              f"the tool says {human_bytes(r.reported_bytes)}" if r.reported_bytes is not None else ""],
                    ("✅ " if r.ok else "⚠️ ") + r.detail) for r in report.results]
    icon = "✅" if report.ok else "⚠️"
    title = f"{icon} Clean-up freed {human_bytes(report.freed_bytes)} (measured on the disks):"
    reply = items(title, entries)
    errors = [e for r in report.results for e in r.errors]
    if errors:
        reply = reply + Reply.text("Problems:\n" + "\n".join(f"- {e}" for e in errors)
                                   + "\nThe other steps still ran; fix the cause and run !cleanup run again.")
    return reply
