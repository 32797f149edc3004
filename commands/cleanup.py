"""!cleanup: what each clean-up step that applies here would free (a dry run); !cleanup run: do it, after
another admin's approval. The settings and rendering are in spbot/features/cleanup/, the steps
themselves in spbot/system/cleanup/."""
from __future__ import annotations

from spbot.context import Context
from spbot.features.cleanup import CleanupFeature
from spbot.features.cleanup.render import dry_run_reply, preview_text, report_reply
from spbot.features.disk import DiskFeature
from spbot.features.disk.usage import UsageUnavailable
from spbot.registry import command
from spbot.render import Reply, human_bytes
from spbot.system import disks
from spbot.system.cleanup import CleanupStep


@command("cleanup", group="disks", help="dry run: what each clean-up step would free (nix GC, journal, old logs, apt "
                         "cache, /old-root); nothing is changed")
async def cleanup_dry_run(ctx: Context) -> Reply:
    feature = ctx.feature(CleanupFeature)
    return dry_run_reply(await feature.dry_run(), feature.settings)


async def run_preview(bot) -> str:
    return preview_text(await bot.feature(CleanupFeature).dry_run())


@command("cleanup run", group="disks",
         help="run the clean-up steps (needs another admin's approval); reports what each freed",
         dangerous=True, locks={"system"}, preview=run_preview)
async def cleanup_run(ctx: Context) -> Reply:
    """Runs every step that applies, in order; each step's bytes are measured as the free space of its
    filesystem before and after. A failed step is reported and the others still run."""
    feature = ctx.feature(CleanupFeature)
    planned = feature.steps()
    if not planned:
        return Reply.text("Nothing to clean here: none of the clean-up steps applies to this server.")
    done = 0

    async def on_step(step: CleanupStep) -> None:
        nonlocal done
        await ctx.job.progress(f"{step.title} ({done + 1}/{len(planned)})", done / len(planned))
        done += 1

    report = await feature.run(on_step)
    await ctx.job.progress("measuring the disks", 1.0)
    disk = ctx.feature(DiskFeature)
    await disk.watch.tick()                # fresh samples, so a disk alert can clear right away
    return report_reply(report) + await _disks_now(disk)


async def _disks_now(disk: DiskFeature) -> Reply:
    try:
        usages = await disk.usage()
    except (UsageUnavailable, disks.ProbeTimeout) as exc:
        return Reply.text(f"Disks now: cannot be read ({exc})")
    parts = [f"{u.mountpoint} {u.percent:.0f}% ({human_bytes(u.free)} free)" for u in usages if u.available]
    return Reply.text("Disks now: " + " · ".join(parts))
