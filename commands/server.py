"""!server: the family's cloud server (Hetzner or DigitalOcean, as [cloud] says) — facts, metrics,
reboot, snapshot, resize."""
from __future__ import annotations

import asyncio
import time
from typing import Annotated, Literal

from spbot.context import Context, UserError
from spbot.features.common import progress_steps, tolerant_preview
from spbot.features.server import ServerFeature
from spbot.features.server.render import Cost, money
from spbot.features.server.settings import ServerConfig
from spbot.providers.cloud_server import (
    MetricSeries, ResizePlan, ServerFacts, ServerMetrics, ServerTypeInfo,
)
from spbot.providers.errors import ProviderError
from spbot.registry import Arg, command
from spbot.render import Item, Reply, escape, human_bytes, items
from spbot.system.forecast import DAY, sparkline

OWN_HOST = ("I run on {name} myself: a resize first powers it off, and I would go down with "
            "it before I could change the type and power it on again, so it would stay off.")
OWN_HOST_TODO = ("Resize it in {console} (it powers the server on again), or run the bot on "
                 "another machine and set bot_runs_on_server = false in [{section}].")
METRICS_NOTE = {"digitalocean": "DigitalOcean reports no disk I/O: the filesystem rows show how "
                                "full each one is; network is public and private bandwidth."}


# -- !server -------------------------------------------------------------------------------


@command("server", group="cloud", help="the cloud server: type, location, addresses, status, traffic, price")
async def server(ctx: Context) -> Reply:
    feature = ctx.feature(ServerFeature)
    label = feature.require_settings().label
    facts = await feature.provider().server_facts()
    own = feature.runs_on_server(facts)
    return facts_reply(f"🖥 {facts.name}: {facts.status}", [
        ("type", type_text(facts.server_type, facts.disk_gb)),
        ("location", f"{facts.location}" + (f" ({facts.city})" if facts.city else "")),
        ("IPv4", facts.ipv4 or "none"),
        ("IPv6", facts.ipv6 or "none"),
        ("traffic", traffic_text(facts, label)),
        ("price", price_text(facts.server_type)),
        ("volumes", f"{len(facts.volume_ids)} attached (see !volume list)"),
        ("bot", "runs on this server" if own else "runs on another machine"),
    ])


def facts_reply(title: str, rows: list[tuple[str, str]]) -> Reply:
    body = "\n".join([title] + [f"{label}: {value}" for label, value in rows])
    html = f"<b>{escape(title)}</b><br>" + "<br>".join(
        f"<b>{escape(label)}</b>: {escape(value)}" for label, value in rows)
    return Reply(body, html)


def type_text(server_type: ServerTypeInfo, disk_gb: int | None = None) -> str:
    disk = disk_gb if disk_gb is not None else server_type.disk_gb
    kept = f" (the type offers {server_type.disk_gb} GB)" if disk != server_type.disk_gb else ""
    return (f"{server_type.name}: {server_type.cores} vCPU, {server_type.memory_gb:g} GB RAM, "
            f"{disk} GB disk{kept}")


def price_text(server_type: ServerTypeInfo) -> str:
    price = Cost.of(server_type.monthly_price)
    return price.text() if price else "unknown (the type is not sold in this location)"


def traffic_text(facts: ServerFacts, label: str = "Hetzner") -> str:
    used = facts.outgoing_traffic_bytes or 0
    included = facts.included_traffic_bytes
    if facts.outgoing_traffic_bytes is None:
        allowance = f"{human_bytes(included)} out included per month" if included else "unknown"
        return f"{allowance}; {label} does not report the traffic used through its API"
    if not included:
        return f"{human_bytes(used)} out this month"
    return (f"{human_bytes(used)} out of {human_bytes(included)} included this month "
            f"({used / included:.1%}); incoming traffic is free")


# -- !server metrics -----------------------------------------------------------------------


@command("server metrics", group="cloud", help="CPU, disk and network of the last 1h, 24h or 7d as sparklines")
async def server_metrics(ctx: Context, period: Literal["1h", "24h", "7d"] = "24h") -> Reply:
    feature = ctx.feature(ServerFeature)
    client = feature.provider()
    facts = await client.server_facts()
    kinds = await asyncio.gather(*(client.metrics(kind, period)
                                   for kind in ("cpu", "disk", "network")))
    entries = [Item(series_label(s.name), [series_sparkline(s, metrics), *(
        f"{what} {value}" for what, value in zip(("min", "avg", "max"), series_stats(s)))])
        for metrics in kinds for s in metrics.series]
    step = kinds[0].step
    reply = items(f"📈 {facts.name}, last {period} (one point per {step / 60:g} min)", entries)
    note = METRICS_NOTE.get(feature.require_settings().section)
    return reply + Reply.text(note) if note else reply


def series_label(name: str) -> str:
    """`cpu` → CPU; `disk.0.iops.read` → disk read IO/s; `network.0.bandwidth.in` → network in;
    `network.public.bandwidth.in` → network public in."""
    if name == "cpu":
        return "CPU"
    parts = name.split(".")
    if len(parts) != 4:
        return name
    kind, device, measure, direction = parts
    unit = {"iops": " IO/s", "pps": " packets/s"}.get(measure, "")
    which = "" if device.isdigit() else f" {device}"
    return f"{kind}{which} {direction}{unit}"


def series_stats(series: MetricSeries) -> list[str]:
    values = [p.value for p in series.points]
    if not values:
        return ["–", "–", "–"]
    return [value_text(v, series.unit) for v in (min(values), series.average, series.peak)]


def value_text(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "bytes/s":
        return f"{human_bytes(value)}/s"
    return f"{value:.1f}"


def series_sparkline(series: MetricSeries, metrics: ServerMetrics, width: int = 24) -> str:
    # forecast.sparkline draws percent of a total: give it each value as a share of the peak.
    peak = series.peak or 0.0
    if peak <= 0:
        return "▁" * width
    scale = 1_000_000
    samples = [(p.at.timestamp(), round(p.value / peak * scale), scale) for p in series.points]
    span = (metrics.end - metrics.start).total_seconds()
    return sparkline(samples, metrics.end.timestamp() + metrics.step, days=span / DAY,
                     width=width)


# -- !server reboot ------------------------------------------------------------------------


@tolerant_preview
async def reboot_preview(bot) -> str:
    feature = bot.feature(ServerFeature)
    facts = await feature.provider().server_facts()
    lines = [f"Soft reboot of {facts.name} ({facts.server_type.name}, {facts.location}, "
             f"{facts.ipv4}): every service is down for a minute or two."]
    if feature.runs_on_server(facts):
        lines.append("I run on this server: I go down with it and report here when I am back.")
    return "\n".join(lines)


@command("server reboot", group="cloud", help="soft reboot of the server through its provider (needs approval)",
         dangerous=True, locks={"system", "hetzner"}, preview=reboot_preview)
async def server_reboot(ctx: Context) -> Reply:
    feature = ctx.feature(ServerFeature)
    client, label = feature.provider(), feature.require_settings().label
    facts = await client.server_facts()
    own = feature.runs_on_server(facts)
    await ctx.job.progress(f"asking {label} to reboot {facts.name}")
    # Stored before the request: if the reboot takes the bot down, the restarted bot reports.
    await feature.remember_reboot(
        job_id=ctx.job.id, requester=ctx.sender, room_id=ctx.request.room_id,
        event_id=ctx.request.event_id, server=facts.name, own_host=own,
        requested_at=time.time(), action_id=None)
    if own:
        await ctx.job.expect_interruption("the server was rebooting, and I run on it")
    try:
        action = await client.start_reboot()
        await feature.remember_reboot(action_id=action.id)
        await ctx.job.progress("rebooting; I will report here when I am back" if own
                               else f"rebooting ({label} action #{action.id})")
        result = await client.wait_action(action, "rebooting the server")
        after = await client.server_facts()
    except asyncio.CancelledError:
        if ctx.job.cancelled_by:  # an admin stopped the wait; a bot stop keeps the mark
            await feature.forget_reboot()
        raise
    except (UserError, ProviderError):
        await feature.forget_reboot()
        raise
    await feature.forget_reboot()
    return Reply.text(f"✅ {after.name} rebooted: {label}'s reboot action #{result.id} "
                      f"succeeded; the server is {after.status}.")


# -- !server snapshot ----------------------------------------------------------------------


@command("server snapshot", group="cloud", locks={"hetzner"},
         help="snapshot image of the server's disk, with an optional description")
async def server_snapshot(ctx: Context, *description: str) -> Reply:
    feature = ctx.feature(ServerFeature)
    client, settings = feature.provider(), feature.require_settings()
    snapshot = await client.create_snapshot(" ".join(description) or None,
                                            on_progress=progress_steps(ctx.job, 1))
    billed = "compressed" if settings.section == "hetzner" else "billed"
    size = (f"{snapshot.image_size_gb:g} GB {billed}" if snapshot.image_size_gb is not None
            else "size not known yet")
    disk = f", of a {snapshot.disk_size_gb:g} GB disk" if snapshot.disk_size_gb else ""
    return Reply.text(f"📸 Snapshot #{snapshot.image_id} “{snapshot.description}” is "
                      f"{snapshot.status}: {size}{disk}.\nSnapshots are billed per GB every "
                      f"month; delete old ones in {settings.console}.")


# -- !server resize ------------------------------------------------------------------------


TypeName = Annotated[str, Arg(metavar="type",
                               help="the new server type, e.g. cx32 or s-4vcpu-8gb")]


@tolerant_preview
async def resize_preview(bot, server_type: str, *, grow_disk: bool = False) -> str:
    feature = bot.feature(ServerFeature)
    client, settings = feature.provider(), feature.require_settings()
    facts = await client.server_facts()
    plan = await client.plan_resize(server_type, grow_disk)
    await feature.remember_shown_type(plan.new.name, plan.current.name)
    lines = plan_lines(plan, settings)
    if feature.runs_on_server(facts):
        lines.append("⚠️ This will be refused: " + OWN_HOST.format(name=facts.name))
    if plan.problems:
        lines.append(f"⚠️ {settings.label} cannot do this: " + "; ".join(plan.problems) + ".")
    return "\n".join(lines)


def plan_lines(plan: ResizePlan, settings: ServerConfig) -> list[str]:
    if plan.grow_disk:
        disk = (f"The disk grows to {plan.disk_gb_after} GB, which cannot be undone: a smaller "
                "type is no longer possible afterwards. The server is off while the disk "
                "grows, about a minute per GB of data on it.")
    else:
        disk = (f"The disk stays {plan.disk_gb_after} GB, so going back to a smaller type stays "
                "possible. The server is off for a few minutes.")
    return [f"{plan.server}: {type_text(plan.current)} → {type_text(plan.new)}.",
            price_change(plan, settings), disk]


def price_change(plan: ResizePlan, settings: ServerConfig) -> str:
    old, new = Cost.of(plan.current.monthly_price), Cost.of(plan.new.monthly_price)
    difference = Cost.of(plan.monthly_difference)
    if not (old and new and difference):
        return f"Price: unknown for this location; see {settings.types_url}."
    return (f"Price: {money(old.net, old.currency)} → {money(new.net, new.currency)} per month, "
            f"{difference.text(signed=True)}.")


@command("server resize", group="cloud", help="change the server type, keeping the disk unless --grow-disk "
                               "(needs approval)",
         dangerous=True, locks={"system", "hetzner"}, preview=resize_preview)
async def server_resize(ctx: Context, server_type: TypeName, *, grow_disk: bool = False) -> Reply:
    feature = ctx.feature(ServerFeature)
    client, settings = feature.provider(), feature.require_settings()
    facts = await client.server_facts()
    if feature.runs_on_server(facts):
        raise UserError(OWN_HOST.format(name=facts.name),
                        OWN_HOST_TODO.format(console=settings.console, section=settings.section))
    plan = await client.plan_resize(server_type, grow_disk)
    if not plan.possible:
        raise UserError(f"{settings.label} cannot resize: " + "; ".join(plan.problems) + ".",
                        f"Pick another type; see {settings.types_url}.")
    shown = await feature.shown_type(plan.new.name)
    # Stored before the server is powered off: a stop or a cancel while it is off is finished later
    # (spbot/features/server/resizing.py), instead of leaving the family's server off.
    await feature.remember_resize(
        job_id=ctx.job.id, requester=ctx.sender, room_id=ctx.request.room_id, event_id=ctx.request.event_id,
        server=facts.name, current=plan.current.name, new=plan.new.name, was_running=facts.status != "off",
        requested_at=time.time())
    try:
        result = await client.resize(plan.new.name, grow_disk=grow_disk,
                                     expect_current=shown or plan.current.name,
                                     on_progress=progress_steps(ctx.job, 3))
    except asyncio.CancelledError:
        if ctx.job.cancelled_by:  # an admin's !cancel: finished now; a bot stop: at the next start
            # Shielded: a second !cancel ends the job, not the finishing (the server must come back).
            await asyncio.shield(feature.finish_cancelled_resize())
        raise
    except (UserError, ProviderError):  # the provider's resize powered a running server on again
        await feature.forget_resize()
        raise
    await feature.forget_resize()
    after = result.facts
    actions = ", ".join(f"{a.command} {a.status}" for a in result.actions)
    return Reply.text("\n".join([
        f"✅ {after.name} is now a {after.server_type.name} (was {result.plan.current.name}): "
        f"{type_text(after.server_type, after.disk_gb).partition(': ')[2]}.",
        price_change(result.plan, settings),
        f"Status: {after.status}. {settings.label} actions: {actions}.",
    ]))
