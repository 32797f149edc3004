"""!services: every enabled catalogue service ([services.<name>]: state, since, memory, health, last
backup) and the configured systemd units ([services] units); !services detect: which catalogue services
this machine runs, as config to copy. The one-service commands are in commands/service.py; the settings,
checks and alerts are the services feature's (spbot/features/services/)."""
from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

from spbot.context import Context, UserError
from spbot.features.services import ServicesFeature
from spbot.features.services.detect import detect, proposal
from spbot.features.services.render import services_table, since_text, state_text
from spbot.registry import command
from spbot.render import Reply, escape, human_bytes, table
from spbot.system.services import ServiceError, unit_states


@command("services", group="disks", help="state of the family's services and the configured units: running or not, since "
                          "when, memory, health, last backup")
async def services(ctx: Context) -> Reply:
    feature = ctx.feature(ServicesFeature)
    params = feature.settings
    if not params.units and not feature.services:
        return Reply.text("No services are configured: list them in the bot's config, e.g. "
                          "[services] units = [\"nginx\", \"gitea\"], and restart the bot.")
    zone = ZoneInfo(ctx.config.timezone)
    parts = []
    if feature.services:
        states = await asyncio.gather(*(feature.controller.state(spec) for spec in feature.services.values()))
        parts.append(services_table(list(states), zone, await feature.last_backups()))
    if params.units:
        parts.append(await _units(params, zone))
    reply = parts[0]
    for part in parts[1:]:
        reply = reply + part
    return reply


async def _units(params, zone: ZoneInfo) -> Reply:
    try:
        states = await unit_states(params)
    except ServiceError as exc:
        raise UserError(f"I could not ask systemd: {exc}", "check systemd on the server: systemctl status")
    rows = [[s.unit, state_text(s), since_text(s, zone), human_bytes(s.memory_bytes)
             if s.memory_bytes is not None else ""] for s in states]
    reply = table(["unit", "state", "since", "memory"], rows, title="Services:")
    bad = [s.unit for s in states if not s.healthy]
    if bad:
        reply = reply + Reply.text(f"Not running: {', '.join(bad)}. Restart with !service restart "
                                   f"<unit> (another admin approves).")
    return reply


@command("services detect", group="disks", help="which catalogue services run on this machine, as [services.<name>] "
                                 "config to copy")
async def services_detect(ctx: Context) -> Reply:
    feature = ctx.feature(ServicesFeature)
    found = await asyncio.to_thread(detect, feature.settings.root)
    if not found:
        return Reply.text("I found no service of the catalogue here (no unit files, no NixOS options). "
                          "A folder of files can still be backed up: [services.photos] definition = \"folder\", "
                          "data_paths = [\"/srv/photos\"].")
    new = [f.name for f in found if f.name not in feature.services]
    text = proposal(found, set(feature.services))
    head = (f"Found {len(found)} service(s): {', '.join(f.name for f in found)}. "
            + (f"To watch and back up {', '.join(new)}, add to the config and restart the bot:" if new
               else "All of them are enabled already."))
    return Reply(f"{head}\n{text}", f"{escape(head)}<pre><code>{escape(text)}</code></pre>")
