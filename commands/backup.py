"""!backup: snapshots of the server's services with restic — now, list, stats, restore, prune, drill,
setup. The work is in spbot/features/backup/; this module only declares the commands."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from spbot.context import Context, UserError
from spbot.features import backup as b
from spbot.features.backup import BackupFeature
from spbot.registry import ONE_OTHER_ADMIN, Policy, command
from spbot.render import Reply


def _backups(ctx: Context) -> b.Backups:
    return ctx.feature(BackupFeature).backups


def _progress(ctx: Context):
    async def show(step: str, fraction: float | None) -> None:
        await ctx.job.progress(step, fraction)
    return show


@command("backup now", group="backups",
         help="back up all services, or the ones named, with live progress", locks={"system"})
async def backup_now(ctx: Context, *services: str) -> Reply:
    await ctx.job.progress("starting")
    several = len(_backups(ctx).select(services)) > 1

    async def say(outcome: b.Outcome) -> None:
        await ctx.say(Reply.text(outcome.line()))

    outcomes = await ctx.feature(BackupFeature).run_and_alert(services, "manual", _progress(ctx),
                                                              say if several else None)
    return b.reply_for(outcomes, each_said=several)


@command("backup list", group="backups", help="snapshots per service: time, reason, size")
async def backup_list(ctx: Context, service: str | None = None) -> Reply:
    backups = _backups(ctx)
    if service:
        backups.select([service])
    restic = backups.restic()
    snapshots = await backups.snapshots(service, restic)
    sizes = await backups.snapshot_sizes(snapshots, restic)
    return b.render_list(snapshots, sizes, ctx.config.timezone)


@command("backup stats", group="backups", help="repository size, dedup ratio, last success per service, B2 usage")
async def backup_stats(ctx: Context) -> Reply:
    return b.render_stats(await _backups(ctx).stats(), ctx.config.timezone)


async def restore_preview(bot, snapshot: str, service: str | None = None, to: Path | None = None) -> str:
    backups = bot.feature(BackupFeature).backups
    if _every_service(snapshot, service, to):
        names = ", ".join(backups.services) or "none configured"
        return (f"The latest snapshot of every service ({names}) → copied into {to}/<service>; "
                "the live data is not touched.")
    try:
        snap, name = await backups.find_snapshot(snapshot, service, backups.restic())
    except UserError as exc:
        return f"⚠️ {exc.what}"
    paths = ", ".join(snap.paths)
    head = f"Snapshot {snap.short_id} of {name}, {b.local_time(snap.time, bot.config.timezone)} ({b.reason_of(snap)})"
    if to is not None:
        return f"{head} → copied into {to}; the live data is not touched."
    units = list(backups.services[name].units) if name in backups.services else []
    if not units and name in backups.stoppers:
        units = [backups.stoppers[name].what]
    stop = f"; stops and restarts {', '.join(units)}" if units else ""
    return f"{head} → REPLACES {paths} after a pre-restore snapshot of the current data{stop}."


def _every_service(snapshot: str, service: str | None, to: Path | None) -> bool:
    """`!backup restore latest --to DIR` without a service: every service's latest, side by side."""
    return snapshot.strip().lower() == "latest" and service is None and to is not None


@command("backup restore", group="backups",
         help="restore a snapshot into place (or --to a new directory); needs approval",
         dangerous=True, locks={"system"}, preview=restore_preview)
async def backup_restore(ctx: Context, snapshot: str, service: str | None = None, *,
                         to: Path | None = None) -> Reply:
    """Restores into a temporary directory first and verifies it against the snapshot; only then takes a
    pre-restore snapshot of the current data, stops the service's units, moves the restored data into
    place and starts them. With --to the copy goes to that (new or empty) directory instead."""
    backups = _backups(ctx)
    await ctx.job.progress("finding the snapshot")
    if _every_service(snapshot, service, to):
        reports = await backups.restore_all_to(to, _progress(ctx))
        missing = [n for n in backups.services if n not in {r.service for r in reports}]
        lines = [b.render_restore(r, ctx.config.timezone).body for r in reports]
        lines += [f"ℹ️ {n}: no snapshot yet, nothing restored" for n in missing]
        return Reply.text("\n".join(lines))
    if to is not None:
        report = await backups.restore_to(snapshot, service, to, _progress(ctx))
    else:
        report = await backups.restore_into_place(snapshot, service, _progress(ctx))
    return b.render_restore(report, ctx.config.timezone)


@command("backup prune", group="backups",
         help="apply retention now: quotas for automatic snapshots, the last few manual "
              "ones, pre-restore ones for some days", dangerous=True, locks={"system"})
async def backup_prune(ctx: Context) -> Reply:
    await ctx.job.progress("forget and prune")
    return b.render_forget(await _backups(ctx).forget())


async def forget_preview(bot, snapshot: str) -> str:
    backups = bot.feature(BackupFeature).backups
    try:
        snap, name = await backups.find_snapshot(snapshot, None, backups.restic())
    except UserError as exc:
        return f"⚠️ {exc.what}"
    return (f"Snapshot {snap.short_id} of {name}, {b.local_time(snap.time, bot.config.timezone)} "
            f"({b.reason_of(snap)}) → REMOVED for good, with the data no other snapshot uses.")


@command("backup forget", group="backups", help="remove one snapshot for good (any reason); needs approval",
         dangerous=True, locks={"system"}, preview=forget_preview)
async def backup_forget(ctx: Context, snapshot: str) -> Reply:
    """Removes the snapshot (its id from !backup list) and prunes the data only it used. Manual and
    pre-restore snapshots are otherwise kept by their own retention ([backup] keep_manual,
    keep_pre_restore_days)."""
    await ctx.job.progress("forget and prune")
    snap, name = await _backups(ctx).forget_snapshot(snapshot)
    return b.render_forgotten(snap, name, ctx.config.timezone)


@command("backup drill", group="backups",
         help="restore sample files and compare them with the live ones", locks={"system"})
async def backup_drill(ctx: Context, *services: str) -> Reply:
    await ctx.job.progress("restoring sample files")
    return await ctx.feature(BackupFeature).drill_and_alert(services)


def _b2_needs_approval(args: dict) -> Policy | None:
    # `b2` replaces the key file the backups use with a key for the bucket named in chat.
    return ONE_OTHER_ADMIN if args.get("step") == "b2" else None


@command("backup setup", group="backups", help="check the backup set-up; `init` creates the repository; `b2 <bucket>` "
                              "prepares Backblaze B2", policy_when=_b2_needs_approval)
async def backup_setup(ctx: Context, step: Literal["check", "init", "b2"] = "check",
                       bucket: str | None = None) -> Reply:
    backups = _backups(ctx)
    if step == "init":
        return Reply.text(f"✅ {await backups.init()}")
    if step == "b2":
        done = await backups.setup_b2(bucket)
        return Reply.text(b.render_b2_setup(done, backups))
    return b.render_setup(await backups.check_setup())
