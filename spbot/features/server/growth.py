"""A volume's growth has two steps, the provider's (billed from then on) and the filesystem's on this
server. A stop of the bot between them (a crash, the OOM killer) is finished at the next start: the
mark stored before the provider's step is read, the filesystem grown if the volume was, and the
command's room told, as a reply to it (retrying while the network of a freshly booted machine
comes up)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...context import UserError
from ...render import Reply, human_bytes
from . import volumes as vol
from .after_restart import report_after_restart
from .marks import forget_growth, growth_mark
from .settings import ServerConfig
from .volumes import GROWABLE, Mount, VolumeMount

if TYPE_CHECKING:
    from .feature import ServerFeature


async def filesystem_after_growth(settings: ServerConfig, found: VolumeMount) -> tuple[str | None, str]:
    """Grow the filesystem into its grown volume: (what went wrong or None, its size before → after)."""
    problem = await vol.grow_filesystem(settings, found)
    return problem, size_change(found.mount, await mount_now(settings, found.mount.target))


def by_hand(settings: ServerConfig, found: VolumeMount) -> str:
    """What to do when growing the filesystem failed."""
    return f"Grow the filesystem on the server by hand: {' '.join(vol.grow_argv(settings, found))}"


def size_change(before: Mount, after: Mount | None) -> str:
    if after is None:
        return f"{human_bytes(before.size)} before; I could not read it afterwards"
    return f"{human_bytes(before.size)} → {human_bytes(after.size)}"


async def mount_now(settings: ServerConfig, target: str) -> Mount | None:
    try:
        return next((m for m in await vol.mounts(settings) if m.target == target), None)
    except UserError:
        return None


async def finish_growth_after_restart(server: "ServerFeature") -> None:
    await report_after_restart(
        server.host, "volume_growth", growth_mark, forget_growth, lambda mark: _finish(server, mark),
        lambda mark, exc: Reply.error(
            f"I was stopped while growing volume “{mark['name']}” at {mark['mount']} (job #{mark['job_id']}), "
            f"and could not find out how far it got: {exc.what}",
            f"Look at it with !volume list; if it is {mark['after']} GB, grow the filesystem on the server by hand."))


async def _finish(server: "ServerFeature", mark: dict[str, Any]) -> Reply:
    settings = server.require_settings()
    found = await vol.volume_at(settings, server.provider(), mark["mount"])
    what = f"I was stopped while growing volume “{mark['name']}” at {mark['mount']} (job #{mark['job_id']})"
    if found.volume.size_gb < mark["after"]:
        return Reply.text(f"ℹ️ {what}, before {settings.label} grew it: it is still {found.volume.size_gb} GB; "
                          "nothing was added or billed. Send the command again if you still want it.")
    tool = GROWABLE[found.mount.fstype]
    problem, change = await filesystem_after_growth(settings, found)
    if problem:
        return Reply.error(f"{what}: the volume is {found.volume.size_gb} GB at {settings.label} (billed), "
                           f"but {tool} failed now: {problem}",
                           by_hand(settings, found))
    return Reply.text(f"✅ {what}, after {settings.label} grew it to {found.volume.size_gb} GB: I grew the "
                      f"{found.mount.fstype} filesystem now ({tool}): {change}.")
