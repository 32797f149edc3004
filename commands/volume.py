"""!volume: the cloud provider's volumes (Hetzner: the project's; DigitalOcean: the droplet's), and
growing the one behind a mount (volume, then filesystem)."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from spbot.context import Context, UserError
from spbot.features.common import progress_steps, tolerant_preview
from spbot.features.server import ServerFeature
from spbot.features.server import volumes as vol
from spbot.features.server.growth import by_hand, filesystem_after_growth
from spbot.features.server.settings import ServerConfig
from spbot.features.server.volumes import GROWABLE, Mount, VolumeMount
from spbot.registry import Arg, command
from spbot.render import Item, Reply, human_bytes, items

Size = Annotated[str, Arg(metavar="+GB|GB", help="+10 adds 10 GB, 60 makes it 60 GB")]


@command("volume list", group="cloud", help="the cloud volumes, where they are mounted, how full")
async def volume_list(ctx: Context) -> Reply:
    feature = ctx.feature(ServerFeature)
    settings, client = feature.require_settings(), feature.provider()
    volumes = await client.list_volumes()
    if not volumes:
        return Reply.text("The Hetzner project has no volumes." if settings.section == "hetzner"
                          else f"No {settings.label} volume is attached to the server.")
    try:
        found, unknown = await vol.mounts(settings), None
    except UserError as exc:
        found, unknown = [], exc.what
    by_target = {m.target: m for m in found}
    linked = (await vol.volume_ids_of(client, settings, found)).items()
    entries = [Item(f"{v.name} (#{v.id})", [f"{v.size_gb} GB", v.server_name or "not attached", v.location],
                    mount_line(next((by_target[target] for target, key in linked
                                     if vol.is_linked(v, key)), None)))
               for v in volumes]
    reply = items(f"💾 {settings.label} volumes", entries)
    if unknown:
        reply += Reply.text(f"(where they are mounted is unknown: {unknown})")
    return reply


def mount_line(mount: Mount | None) -> str:
    if mount is None:
        return "not mounted here"
    share = f" ({mount.used / mount.size:.0%})" if mount.size else ""
    return (f"mounted at {mount.target}: {mount.fstype}, {human_bytes(mount.used)} of "
            f"{human_bytes(mount.size)} used{share}")


async def _growth(feature: ServerFeature, mount: Path, size: str) -> tuple[VolumeMount, int]:
    """The volume behind `mount` and its new size; UserError when it cannot be grown."""
    settings, client = feature.require_settings(), feature.provider()
    found = await vol.volume_at(settings, client, str(mount))
    return found, _new_size(settings, found, size)


def _new_size(settings: ServerConfig, found: VolumeMount, size: str) -> int:
    problem = vol.grow_problem(found)
    if problem:
        raise UserError(problem[0].upper() + problem[1:] + ".",
                        f"Grow it in {settings.console} and on the server by hand.")
    return vol.new_volume_size(settings, found.volume.size_gb, size)


async def _cost_text(feature: ServerFeature, added_gb: int) -> str:
    settings = feature.require_settings()
    price = await vol.volume_cost_per_gb(settings, feature.provider())
    if price is None:
        return f"price unknown (see {settings.types_url})"
    return price.times(added_gb).text(signed=True)


@tolerant_preview
async def grow_preview(bot, mount: Path, size: str) -> str:
    feature = bot.feature(ServerFeature)
    found, new_size = await _growth(feature, mount, size)
    volume, fs = found.volume, found.mount
    await feature.remember_shown_growth(str(mount), size, str(volume.id), volume.size_gb, new_size)
    added = new_size - volume.size_gb
    return (f"Volume “{volume.name}” (#{volume.id}) at {fs.target}: {volume.size_gb} GB → "
            f"{new_size} GB (+{added} GB), {await _cost_text(feature, added)}.\n"
            f"Then {GROWABLE[fs.fstype]} grows the {fs.fstype} filesystem while it stays mounted.")


@command("volume grow", group="cloud", help="grow the cloud volume behind a mount, then its filesystem "
                             "(needs approval)",
         dangerous=True, locks={"system"}, preview=grow_preview)
async def volume_grow(ctx: Context, mount: Path, size: Size) -> Reply:
    feature = ctx.feature(ServerFeature)
    settings, client = feature.require_settings(), feature.provider()
    await ctx.job.progress(f"looking up the volume at {mount}")
    found = await vol.volume_at(settings, client, str(mount))
    volume, fs = found.volume, found.mount
    shown = await feature.shown_growth(str(mount), size)
    if shown and shown["volume"] == str(volume.id) and volume.size_gb == shown["new"] != shown["current"]:
        return await _grown_already(ctx, settings, found)
    new_size = _new_size(settings, found, size)
    if shown and (shown["volume"], shown["current"]) != (str(volume.id), volume.size_gb):
        raise UserError(f"The volume at {mount} is {volume.size_gb} GB now, not {shown['current']} GB as the "
                        "request showed; nothing was changed.", "Look at it with !volume list, then ask again.")
    # Before the provider's step: a stop from here on is finished at the next start (growth.py).
    await feature.remember_growth(job_id=ctx.job.id, requester=ctx.sender, room_id=ctx.request.room_id,
                                  event_id=ctx.request.event_id, mount=fs.target, name=volume.name,
                                  before=volume.size_gb, after=new_size)
    try:
        reply = await _grow(ctx, feature, found, new_size)
    except asyncio.CancelledError:
        if ctx.job.cancelled_by:           # an admin stopped it; a bot stop keeps the mark
            await feature.forget_growth()
        raise
    except Exception:
        await feature.forget_growth()
        raise
    await feature.forget_growth()
    return reply


async def _grow(ctx: Context, feature: ServerFeature, found: VolumeMount, new_size: int) -> Reply:
    settings, volume, fs = feature.require_settings(), found.volume, found.mount
    await feature.provider().resize_volume(volume.id, new_size, on_progress=progress_steps(ctx.job, 2))
    tool = GROWABLE[fs.fstype]
    await ctx.job.progress(f"growing the {fs.fstype} filesystem ({tool})", fraction=0.5)
    problem, change = await filesystem_after_growth(settings, found)
    if problem:
        raise UserError(f"Volume “{volume.name}” is now {new_size} GB at {settings.label} (billed from "
                        f"now), but {tool} failed: {problem}", by_hand(settings, found))
    return Reply.text(
        f"✅ {fs.target}: volume “{volume.name}” grew {volume.size_gb} → {new_size} GB, "
        f"{await _cost_text(feature, new_size - volume.size_gb)}.\n"
        f"The {fs.fstype} filesystem, as the system sees it: {change}.")


async def _grown_already(ctx: Context, settings: ServerConfig, found: VolumeMount) -> Reply:
    """A twin request (the same growth, asked twice and both approved) ran first: nothing more is added;
    the filesystem is grown in case a stop came between the two steps of the other."""
    volume, fs = found.volume, found.mount
    await ctx.job.progress(f"the volume is {volume.size_gb} GB already; growing the filesystem into it")
    problem, change = await filesystem_after_growth(settings, found)
    if problem:
        raise UserError(f"Volume “{volume.name}” is {volume.size_gb} GB already (another request grew it), but "
                        f"{GROWABLE[fs.fstype]} failed: {problem}",
                        by_hand(settings, found))
    return Reply.text(f"✅ {fs.target}: volume “{volume.name}” is {volume.size_gb} GB already, as this request "
                      "asked: another request grew it, so nothing more was added or billed.\n"
                      f"The {fs.fstype} filesystem, as the system sees it: {change}.")
