"""!volume: the project's Hetzner volumes, and growing the one behind a mount (volume, then
filesystem)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from spbot import cloud
from spbot.cloud import GROWABLE, explained, hetzner, hetzner_settings
from spbot.context import Context, UserError
from spbot.registry import Arg, command
from spbot.render import Reply, human_bytes, table

Size = Annotated[str, Arg(metavar="+GB|GB", help="+10 adds 10 GB, 60 makes it 60 GB")]


@command("volume list", help="the project's Hetzner volumes, where they are mounted, how full")
async def volume_list(ctx: Context) -> Reply:
    settings, client = hetzner_settings(ctx.bot), hetzner(ctx.bot)
    with explained():
        volumes = await client.list_volumes()
    if not volumes:
        return Reply.text("The Hetzner project has no volumes.")
    try:
        found, unknown = await cloud.mounts(settings), None
    except UserError as exc:
        found, unknown = [], exc.what
    by_target = {m.target: m for m in found}
    mounted = {volume_id: by_target[target]
               for target, volume_id in (await cloud.volume_ids_of(settings, found)).items()}
    rows = [[f"{v.name} (#{v.id})", f"{v.size_gb} GB", v.server_name or "not attached",
             v.location, *mount_columns(mounted.get(v.id))] for v in volumes]
    reply = table(["volume", "size", "server", "location", "mounted at", "filesystem"], rows,
                  title="💾 Hetzner volumes", align_right=[1])
    if unknown:
        reply += Reply.text(f"(where they are mounted is unknown: {unknown})")
    return reply


def mount_columns(mount: cloud.Mount | None) -> list[str]:
    if mount is None:
        return ["–", "–"]
    share = f" ({mount.used / mount.size:.0%})" if mount.size else ""
    return [mount.target, f"{mount.fstype}, {human_bytes(mount.used)} of "
                          f"{human_bytes(mount.size)} used{share}"]


async def _growth(bot, mount: Path, size: str) -> tuple[cloud.VolumeMount, int]:
    """The volume behind `mount` and its new size; UserError when it cannot be grown."""
    settings, client = hetzner_settings(bot), hetzner(bot)
    found = await cloud.volume_at(settings, client, str(mount))
    problem = cloud.grow_problem(found)
    if problem:
        raise UserError(problem[0].upper() + problem[1:] + ".",
                        "Grow it in the Hetzner Cloud Console and on the server by hand.")
    return found, cloud.new_volume_size(found.volume.size_gb, size)


async def _cost_text(bot, added_gb: int) -> str:
    price = await cloud.volume_cost_per_gb(hetzner_settings(bot), hetzner(bot))
    if price is None:
        return "price unknown (see https://www.hetzner.com/cloud)"
    return price.times(added_gb).text(signed=True)


@cloud.tolerant_preview
async def grow_preview(bot, mount: Path, size: str) -> str:
    found, new_size = await _growth(bot, mount, size)
    volume, fs = found.volume, found.mount
    added = new_size - volume.size_gb
    return (f"Volume “{volume.name}” (#{volume.id}) at {fs.target}: {volume.size_gb} GB → "
            f"{new_size} GB (+{added} GB), {await _cost_text(bot, added)}.\n"
            f"Then {GROWABLE[fs.fstype]} grows the {fs.fstype} filesystem while it stays mounted.")


@command("volume grow", help="grow the Hetzner volume behind a mount, then its filesystem "
                             "(needs approval)",
         dangerous=True, locks={"system"}, preview=grow_preview)
async def volume_grow(ctx: Context, mount: Path, size: Size) -> Reply:
    settings, client = hetzner_settings(ctx.bot), hetzner(ctx.bot)
    await ctx.job.progress(f"looking up the volume at {mount}")
    found, new_size = await _growth(ctx.bot, mount, size)
    volume, fs = found.volume, found.mount
    with explained():
        await client.resize_volume(volume.id, new_size,
                                   on_progress=cloud.progress_steps(ctx.job, 2))
    tool = GROWABLE[fs.fstype]
    await ctx.job.progress(f"growing the {fs.fstype} filesystem ({tool})", fraction=0.5)
    problem = await cloud.grow_filesystem(settings, found)
    if problem:
        by_hand = " ".join(cloud.grow_argv(settings, found))
        raise UserError(f"Volume “{volume.name}” is now {new_size} GB at Hetzner (billed from "
                        f"now), but {tool} failed: {problem}",
                        f"Grow the filesystem on the server by hand: {by_hand}")
    after = await _mount_now(settings, fs.target)
    return Reply.text(
        f"✅ {fs.target}: volume “{volume.name}” grew {volume.size_gb} → {new_size} GB, "
        f"{await _cost_text(ctx.bot, new_size - volume.size_gb)}.\n"
        f"The {fs.fstype} filesystem, as the system sees it: {size_change(fs, after)}.")


def size_change(before: cloud.Mount, after: cloud.Mount | None) -> str:
    if after is None:
        return f"{human_bytes(before.size)} before; I could not read it afterwards"
    return f"{human_bytes(before.size)} → {human_bytes(after.size)}"


async def _mount_now(settings: cloud.HetznerConfig, target: str) -> cloud.Mount | None:
    try:
        return next((m for m in await cloud.mounts(settings) if m.target == target), None)
    except UserError:
        return None
