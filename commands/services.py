"""!services: state of the configured systemd units; !service restart <unit>: restart one of them (needs
approval). The settings, the failed-units and certificate checks and the server lines of !status are the
services feature's (spbot/features/services/)."""
from __future__ import annotations

import time
from typing import Annotated
from zoneinfo import ZoneInfo

from spbot.context import Context, UserError
from spbot.features.services import ServicesFeature, UnitName
from spbot.registry import Arg, command
from spbot.render import Reply, human_bytes, human_duration, table
from spbot.system.services import ServiceError, UnitNameError, UnitState, restart, unit_state, unit_states

ICONS = {"active": "✅", "failed": "❌", "inactive": "⏹", "activating": "⏳", "deactivating": "⏳",
         "reloading": "🔄"}


@command("services", group="disks", help="state of the configured systemd units: active/failed, since when, memory")
async def services(ctx: Context) -> Reply:
    params = ctx.feature(ServicesFeature).settings
    if not params.units:
        return Reply.text("No services are configured: list them in the bot's config, e.g. "
                          "[services] units = [\"nginx\", \"gitea\"], and restart the bot.")
    try:
        states = await unit_states(params)
    except ServiceError as exc:
        raise UserError(f"I could not ask systemd: {exc}", "check systemd on the server: systemctl status")
    zone = ZoneInfo(ctx.config.timezone)
    rows = [[s.unit, state_text(s), since_text(s, zone), human_bytes(s.memory_bytes)
             if s.memory_bytes is not None else ""] for s in states]
    reply = table(["unit", "state", "since", "memory"], rows, title="Services:")
    bad = [s.unit for s in states if not s.healthy]
    if bad:
        reply = reply + Reply.text(f"Not running: {', '.join(bad)}. Restart with !service restart "
                                   f"<unit> (another admin approves).")
    return reply


def state_text(state: UnitState) -> str:
    if not state.found:
        return "❓ not found"
    icon = ICONS.get(state.active_state, "•")
    detail = f" ({state.sub_state})" if state.sub_state and state.sub_state != state.active_state else ""
    result = f", {state.result}" if state.active_state == "failed" and state.result not in ("", "success") \
        else ""
    return f"{icon} {state.active_state}{detail}{result}"


def since_text(state: UnitState, zone: ZoneInfo) -> str:
    if state.active_since is None:
        return ""
    when = state.active_since.astimezone(zone)
    age = human_duration(max(0.0, time.time() - when.timestamp()))
    return f"{when:%Y-%m-%d %H:%M} ({age})"


async def restart_preview(bot, unit: str) -> str:
    params = bot.feature(ServicesFeature).settings
    try:
        state = await unit_state(params, unit)
    except (ServiceError, UnitNameError) as exc:
        return f"⚠️ {exc}"
    since = since_text(state, ZoneInfo(bot.config.timezone))
    return (f"{state.unit} is {state_text(state)}" + (f" since {since}" if since else "")
            + "; its users are cut off for a moment while it restarts.")


@command("service restart", group="disks", help="restart a configured systemd unit (needs another admin's approval)",
         dangerous=True, locks={"system"}, preview=restart_preview)
async def service_restart(ctx: Context, unit: Annotated[UnitName, Arg(help="e.g. nginx", metavar="unit")]
                          ) -> Reply:
    params = ctx.feature(ServicesFeature).settings
    await ctx.job.progress(f"restarting {unit}")
    try:
        state = await restart(params, unit)
    except UnitNameError as exc:
        raise UserError(str(exc), "see the configured units with !services")
    except ServiceError as exc:
        raise UserError(str(exc), f"read its log on the server: journalctl -u {unit} -n 50")
    if state.healthy:
        since = (f" since {state.active_since.astimezone(ZoneInfo(ctx.config.timezone)):%H:%M:%S}"
                 if state.active_since else "")
        return Reply.text(f"✅ {state.unit} restarted: {state.active_state} ({state.sub_state}){since}.")
    return Reply.error(f"{state.unit} was restarted but is now {state_text(state)}",
                       f"read its log on the server: journalctl -u {state.unit} -n 50")
