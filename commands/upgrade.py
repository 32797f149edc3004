"""!upgrade check, !upgrade, !rollback, !generations, !reboot: system upgrades from the chat.

The flows, settings, schedule and drivers live in the upgrade feature (spbot/features/upgrade/);
this is the chat surface.
"""
import socket
from typing import Annotated

from spbot.context import Context, UserError
from spbot.features.upgrade.drivers.nixos import NixosDriver
from spbot.features.upgrade.feature import UpgradeFeature
from spbot.features.upgrade.flows import CHECK_LOCKS, LOCKS, rollback_unavailable
from spbot.features.upgrade.render import render_check, render_generations, render_rollback, render_upgrade
from spbot.registry import Arg, command
from spbot.render import Reply, human_duration


@command("upgrade check", group="system", help="what a system upgrade would change, and whether a reboot is needed",
         locks=CHECK_LOCKS)
async def upgrade_check(ctx: Context, *, cached: Annotated[bool, Arg(
        "skip apt-get update / the channel update and use what the server already knows")] = False,
        all: Annotated[bool, Arg("list every pending update, not only the first ten")] = False
        ) -> Reply:
    info, result = await ctx.feature(UpgradeFeature).flows.check(ctx.job, refresh=not cached)
    return render_check(info, result, show_all=all)


async def preview_upgrade(bot, no_backup: bool = False) -> str:
    flows = bot.feature(UpgradeFeature).flows
    info, tool = flows.system()
    if isinstance(tool, NixosDriver):
        how = "nixos-rebuild switch " + (f"--flake {tool.params.flake}" if tool.params.flake else "--upgrade")
    else:
        how = "apt-get dist-upgrade"
    backup = flows.backup_skipped(not no_backup) or "a backup of the services first"
    return f"{info.pretty_name}: {how}, {backup}. {await flows.last_check_line(info)}"


@command("upgrade", group="system", help="upgrade the system: backup first, live log, summary", dangerous=True,
         locks=LOCKS, preview=preview_upgrade)
async def upgrade(ctx: Context, *, no_backup: Annotated[bool, Arg(
        "do not back up the services before upgrading")] = False) -> Reply:
    info, result, backup_line = await ctx.feature(UpgradeFeature).flows.upgrade(ctx.job, backup=not no_backup)
    return render_upgrade(info, result, backup_line, ctx.job)


async def preview_rollback(bot) -> str:
    info, tool = bot.feature(UpgradeFeature).flows.system()
    if not isinstance(tool, NixosDriver):
        return f"⚠️ {rollback_unavailable(info).what} Approving it does nothing."
    found = await tool.generations()
    current = next((g for g in found if g.current), None)
    older = [g for g in found if current and g.number < current.number]
    if current is None or not older:
        return "⚠️ there is no previous generation to go back to."
    return f"{info.pretty_name}: from generation {current.number} back to {older[-1].number}."


@command("rollback", group="system", help="NixOS: switch back to the previous system generation", dangerous=True,
         locks=LOCKS, preview=preview_rollback)
async def rollback(ctx: Context) -> Reply:
    info, result = await ctx.feature(UpgradeFeature).flows.rollback(ctx.job)
    return render_rollback(info, result, ctx.job)


@command("generations", group="system", help="NixOS: the system generations, newest first")
async def generations(ctx: Context) -> Reply:
    info, found = await ctx.feature(UpgradeFeature).flows.generations()
    if not found:
        raise UserError("nix-env lists no system generations", "Check the [upgrade.nixos] profile path.")
    return render_generations(info, found)


async def preview_reboot(bot) -> str:
    up = bot.feature(UpgradeFeature).reboots.uptime()
    since = f", up {human_duration(up)}" if up is not None else ""
    return (f"Reboots {socket.gethostname()}{since}: every service is down for a minute or two. "
            "I post a notice first and say when I am back.")


@command("reboot", group="system", help="reboot the server: a notice first, and a message when it is back",
         dangerous=True, locks={"system"}, preview=preview_reboot)
async def reboot(ctx: Context) -> Reply:
    request = ctx.request
    await ctx.feature(UpgradeFeature).reboots.reboot_soon(ctx.sender, ctx.job,
                                                            request.room_id, request.event_id)
    return Reply.text(f"🔄 Rebooting {socket.gethostname()} now (asked by {ctx.sender}). Services will "
                      "be down for a minute or two; I will say here when I am back.")
