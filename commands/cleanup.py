"""!cleanup: what each clean-up step that applies here would free (a dry run); !cleanup run: do it, after
another admin's approval. The steps themselves are in spbot/system/cleanup.py."""
from __future__ import annotations

from pydantic import ConfigDict, Field

from spbot import diskwatch
from spbot.config import Duration, config_section
from spbot.context import Context
from spbot.registry import command
from spbot.render import Reply, human_bytes, table
from spbot.system import cleanup, disks
from spbot.system.cleanup import CleanupParams, CleanupReport, Estimate


@config_section("cleanup")
class CleanupSettings(CleanupParams):
    """[cleanup]: which steps, where the logs and caches are, and the tools' limits."""
    model_config = ConfigDict(extra="forbid")
    timeout: Duration = Field(600.0, description="How long one step may take.")
    nix_timeout: Duration = Field(3600.0, description="How long the nix garbage collection may take.")


NOT_HERE = {"nix": "not NixOS", "journal": "no journalctl", "logs": "no log directory",
            "apt": "not Debian", "old-root": "no /old-root"}


def settings_of(bot) -> CleanupSettings:
    return bot.config.settings("cleanup")


@command("cleanup", help="dry run: what each clean-up step would free (nix GC, journal, old logs, apt "
                         "cache, /old-root); nothing is changed")
async def cleanup_dry_run(ctx: Context) -> Reply:
    params = settings_of(ctx.bot)
    estimates = await cleanup.dry_run(params)
    if not estimates:
        return Reply.text("Nothing to clean here: none of the clean-up steps applies to this server "
                          f"({_skipped(params)}).")
    reply = estimates_table(estimates, "Clean-up, dry run (nothing was changed):")
    total, exact = _total(estimates)
    lines = [f"Would free {'about ' if not exact else ''}{human_bytes(total)}"
             + (" plus what the steps marked ? free" if any(e.bytes is None for e in estimates) else "")
             + ". To do it: !cleanup run (another admin approves)."]
    if skipped := _skipped(params):
        lines.append(f"Not here: {skipped}.")
    return reply + Reply.text("\n".join(lines))


async def run_preview(bot) -> str:
    estimates = await cleanup.dry_run(settings_of(bot))
    if not estimates:
        return "No clean-up step applies to this server: nothing would be done."
    steps = ", ".join(f"{e.title} ({_size(e)})" for e in estimates)
    total, exact = _total(estimates)
    return f"Steps: {steps}. Would free {'about ' if not exact else ''}{human_bytes(total)} or more."


@command("cleanup run", help="run the clean-up steps (needs another admin's approval); reports what each freed",
         dangerous=True, locks={"system"}, preview=run_preview)
async def cleanup_run(ctx: Context) -> Reply:
    """Runs every step that applies, in order; each step's bytes are measured as the free space of its
    filesystem before and after. A failed step is reported and the others still run."""
    params = settings_of(ctx.bot)
    planned = cleanup.steps(params)
    if not planned:
        return Reply.text("Nothing to clean here: none of the clean-up steps applies to this server.")
    done = 0

    async def on_step(step: cleanup.CleanupStep) -> None:
        nonlocal done
        await ctx.job.progress(f"{step.title} ({done + 1}/{len(planned)})", done / len(planned))
        done += 1

    report = await cleanup.run_all(params, on_step)
    await ctx.job.progress("measuring the disks", 1.0)
    watch = diskwatch.watch_of(ctx.bot)
    await watch.tick()                     # fresh samples, so a disk alert can clear right away
    return report_reply(report) + await _disks_now(ctx.bot)


# --------------------------------------------------------------------------- rendering

def _size(estimate: Estimate) -> str:
    if estimate.bytes is None:
        return "?"
    return human_bytes(estimate.bytes) if estimate.exact else f"~{human_bytes(estimate.bytes)}"


def _total(estimates: list[Estimate]) -> tuple[int, bool]:
    known = [e for e in estimates if e.bytes is not None]
    return sum(e.bytes for e in known), all(e.exact for e in known)


def _skipped(params: CleanupParams) -> str:
    offered = {s.name for s in cleanup.steps(params)}
    return ", ".join(f"{cls.name} ({NOT_HERE[cls.name]})" for cls in cleanup.STEP_TYPES
                     if cls.name not in offered and (params.enabled is None or cls.name in params.enabled))


def estimates_table(estimates: list[Estimate], title: str) -> Reply:
    rows = [[e.title, _size(e), f"⚠️ {e.error}" if e.error else e.detail] for e in estimates]
    return table(["step", "would free", "what"], rows, title=title, align_right=(1,))


def report_reply(report: CleanupReport) -> Reply:
    rows = [[r.title, human_bytes(r.freed_bytes),
             human_bytes(r.reported_bytes) if r.reported_bytes is not None else "",
             ("✅ " if r.ok else "⚠️ ") + r.detail] for r in report.results]
    icon = "✅" if report.ok else "⚠️"
    title = f"{icon} Clean-up freed {human_bytes(report.freed_bytes)} (measured on the disks):"
    reply = table(["step", "freed", "tool says", "result"], rows, title=title, align_right=(1, 2))
    errors = [e for r in report.results for e in r.errors]
    if errors:
        reply = reply + Reply.text("Problems:\n" + "\n".join(f"- {e}" for e in errors)
                                   + "\nThe other steps still ran; fix the cause and run !cleanup run again.")
    return reply


async def _disks_now(bot) -> Reply:
    try:
        usages = await diskwatch.read_usage(diskwatch.settings_of(bot))
    except (diskwatch.UsageUnavailable, disks.ProbeTimeout) as exc:
        return Reply.text(f"Disks now: cannot be read ({exc})")
    parts = [f"{u.mountpoint} {u.percent:.0f}% ({human_bytes(u.free)} free)" for u in usages if u.available]
    return Reply.text("Disks now: " + " · ".join(parts))
