"""!service <name>: one enabled service in detail; !service logs <name> [n] [--since 1h]: its journal or
container output, secrets masked; !service restart|stop|start <name>: its units or containers (restart and
stop need another admin's approval). A configured unit ([services] units) works where a service does."""
from __future__ import annotations

import asyncio
from typing import Annotated
from zoneinfo import ZoneInfo

from spbot.context import Context, UserError
from spbot.features.services import ServicesFeature
from spbot.features.services.definition import Definition
from spbot.features.services.journal import journal, mask, since_seconds, summarise
from spbot.features.services.render import backup_text, details, log_reply, service_word, since_text, state_text
from spbot.features.services.settings import EnabledName, ServiceTarget
from spbot.features.services.synapse.restart import back_after
from spbot.registry import Arg, command
from spbot.render import Reply
from spbot.system.services import (ServiceError, ServicesParams, UnitNameError, act, restart, unit_state)


Target = Annotated[ServiceTarget, Arg(help="a service (!services) or a configured unit, e.g. nginx", metavar="unit")]
HOMESERVER = "synapse"
HEALTH_WAIT = 30.0


@command("service", group="disks", help="one service in detail: its units or containers, health, data, database, last backup")
async def service(ctx: Context, name: Annotated[EnabledName, Arg(help="e.g. nextcloud", metavar="service")]) -> Reply:
    feature = ctx.feature(ServicesFeature)
    state = await feature.controller.state(feature.services[name])
    backups = await feature.last_backups()
    upkeep = feature.homeserver
    extra = await upkeep.store_lines() if upkeep is not None and upkeep.spec.name == name else []
    return details(state, ZoneInfo(ctx.config.timezone), backups.get(name, backup_text(None)), extra)


@command("service logs", group="disks", help="the recent log of a service or unit, secrets masked: [n lines] [--since 1h]")
async def service_logs(ctx: Context, target: Target,
                       lines: Annotated[int, Arg(help="how many lines", min=1, max=2000)] = 50, *,
                       since: Annotated[str | None, Arg(help="e.g. 30m, 1h, 2d", max_length=8)] = None) -> Reply:
    feature = ctx.feature(ServicesFeature)
    try:
        seconds = since_seconds(since)
    except ValueError as exc:
        raise UserError(str(exc), "e.g. !service logs nextcloud 100 --since 1h") from None
    spec = feature.services[target] if target.is_service else None
    try:
        if spec is not None:
            raw = await journal(feature.controller, spec, lines, seconds)
        else:
            unit_only = Definition(name="unit", description=f"unit {target}", units=[str(target)])
            raw = await journal(feature.controller, unit_only, lines, seconds)
    except ServiceError as exc:
        raise UserError(f"I could not read the log: {exc}", "read it on the server: journalctl -u <unit>") from None
    shown, head = summarise(mask(raw), lines)
    return log_reply(str(target), shown, head)


async def _preview(bot, target: str, action: str) -> str:
    feature = bot.feature(ServicesFeature)
    zone = ZoneInfo(bot.config.timezone)
    if target in feature.services:
        state = await feature.controller.state(feature.services[target], http=False)
        parts = [u.unit for u in state.units if u.found] + [c.name for c in state.containers]
        cut = "its users are cut off until it is started again" if action == "stop" else \
            "its users are cut off for a moment while it restarts"
        extra = " The chat itself goes quiet while the homeserver restarts." if target == HOMESERVER else ""
        return f"{target} is {service_word(state)} ({', '.join(parts) or 'nothing found'}); {cut}.{extra}"
    try:
        state = await unit_state(feature.settings, target)
    except (ServiceError, UnitNameError) as exc:
        return f"⚠️ {exc}"
    since = since_text(state, zone)
    return (f"{state.unit} is {state_text(state)}" + (f" since {since}" if since else "")
            + ("; its users are cut off for a moment while it restarts." if action == "restart"
               else "; its users are cut off until it is started again."))


async def restart_preview(bot, unit: str) -> str:
    return await _preview(bot, unit, "restart")


async def stop_preview(bot, target: str) -> str:
    return await _preview(bot, target, "stop")


@command("service restart", group="disks", help="restart a service or configured unit (needs another admin's approval)",
         dangerous=True, locks={"system"}, preview=restart_preview)
async def service_restart(ctx: Context, unit: Target) -> Reply:
    if unit.is_service:
        return await _act(ctx, unit, "restart")
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


@command("service stop", group="disks", help="stop a service or configured unit (needs another admin's approval)",
         dangerous=True, locks={"system"}, preview=stop_preview)
async def service_stop(ctx: Context, target: Target) -> Reply:
    return await _act(ctx, target, "stop")


@command("service start", group="disks", help="start a stopped service or configured unit", locks={"system"})
async def service_start(ctx: Context, target: Target) -> Reply:
    return await _act(ctx, target, "start")


async def _act(ctx: Context, target: ServiceTarget, action: str) -> Reply:
    feature = ctx.feature(ServicesFeature)
    verb = {"start": "starting", "stop": "stopping", "restart": "restarting"}[action]
    done = {"start": "started", "stop": "stopped", "restart": "restarted"}[action]
    if not target.is_service:
        params: ServicesParams = feature.settings
        await ctx.job.progress(f"{verb} {target}")
        try:
            await act(params, action, [target])
            state = await unit_state(params, target)
        except (ServiceError, UnitNameError) as exc:
            raise UserError(str(exc), f"read its log: !service logs {target}") from None
        return Reply.text(f"{'✅' if state.healthy == (action != 'stop') else '⚠️'} {state.unit} {done}: "
                          f"{state_text(state)}.")
    spec = feature.services[target]
    if target == HOMESERVER and action != "start":
        await ctx.say(Reply.text(f"{verb} {target}, the homeserver this chat runs on: I go quiet and report "
                                 "back when it answers again."))
    await ctx.job.progress(f"{verb} {target}")
    started = asyncio.get_running_loop().time()
    try:
        await feature.controller.act(spec, action)
    except ServiceError as exc:
        raise UserError(str(exc), f"read its log: !service logs {target}") from None
    back = ""
    if target == HOMESERVER and action == "restart":
        seconds = await back_after(feature.host.connection, started)
        back = (f" The homeserver is back after {seconds:.0f} s." if seconds is not None
                else " The homeserver is not back yet: check it on the server (systemctl status matrix-synapse).")
    state = await feature.controller.state(spec, http=False)
    if action == "stop":
        mark = "✅" if all(not u.healthy for u in state.units) and all(not c.healthy for c in state.containers) \
            else "⚠️"
        return Reply.text(f"{mark} {target} {done}: {service_word(state)}. Start it again with !service start "
                          f"{target}.")
    state = await feature.controller.healthy_within(spec, HEALTH_WAIT)
    mark = "✅" if state.healthy else "⚠️"
    return Reply.text(f"{mark} {target} {done}: {service_word(state)}; health: {state.health_text()}.{back}")

