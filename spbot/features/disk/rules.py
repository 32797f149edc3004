"""The disk alert rules: warn / critical thresholds with hysteresis, "full within N days" from the
trend, and what an alert says (with an offer to purge the homeserver's remote media cache when the mount
holds its media store, to grow the mount when it is a cloud volume)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spbot.render import human_bytes
from spbot.system.disks import MountUsage
from spbot.system.forecast import Trend

from ..findings import Finding, report


def level(percent: float, warn: float, critical: float, hysteresis: float,
          active: str | None) -> str | None:
    """'critical', 'warning' or None for a usage percentage, given the alert already active.

    A level is entered at its threshold and left only `hysteresis` points below it, so a disk
    hovering around 85 % does not flap between alert and recovery."""
    if percent >= critical or (active == "critical" and percent >= critical - hysteresis):
        return "critical"
    if percent >= warn or (active is not None and percent >= warn - hysteresis):
        return "warning"
    return None


def forecast_bad(result: Trend, days: float, active: bool) -> bool:
    """Full within `days` at the current rate; an active alert clears only beyond 1.5 × days."""
    if days <= 0 or result.kind != "full" or result.days_until_full is None:
        return False
    return result.days_until_full <= (days * 1.5 if active else days)


def space_text(usage: MountUsage) -> str:
    return f"{human_bytes(usage.free)} free of {human_bytes(usage.total)}"


def todo_for(mount: str) -> str:
    return f"see what takes the space with !disk {mount}, then free some with !cleanup (a dry run first)"


@dataclass
class DiskFinding(Finding):
    grow_mount: str | None = None    # a mount worth offering to grow (critical, or full soon)


async def grow_offer(host: Any, mount: str) -> Any:
    """The offer to grow the cloud volume at `mount`, or None. The one seam to the server feature:
    only bots with a cloud server configured ever get an offer."""
    from ..server import ServerFeature
    return await host.feature(ServerFeature).grow_offer(mount)


async def purge_offer(host: Any, mount: str) -> Any:
    """The offer to purge the homeserver's cache of other servers' media when `mount` holds its media
    store, or None. The one seam to the services feature (its homeserver upkeep)."""
    from ..services import ServicesFeature
    try:
        upkeep = host.feature(ServicesFeature).homeserver
    except (LookupError, AttributeError):       # not running, or a host without features (unit tests)
        return None
    return await upkeep.purge_offer(mount) if upkeep is not None else None


async def apply_finding(host: Any, finding: Finding, renotify: float, now: float | None = None) -> None:
    """Fire the alert of a bad finding, clear (recovery notice if it was active) a good one. When the
    mount holds the homeserver's media store the alert offers to purge its cache of remote media (free);
    when it is a cloud volume it offers to grow it. An admin's ✅ starts the first offer's approval."""
    mount = getattr(finding, "grow_mount", None)
    if finding.severity is None or not mount:
        await report(host.alerts, finding, renotify, now)
        return
    sections = set(getattr(host.config, "model_extra", None) or {})
    offers = [await purge_offer(host, mount)]
    if {"hetzner", "digitalocean"} & sections:
        offers.append(await grow_offer(host, mount))
    offers = [o for o in offers if o is not None]
    if not offers:
        await report(host.alerts, finding, renotify, now)
        return
    text = "\n".join([finding.text, *(o.alert_line for o in offers)])
    await report(host.alerts, finding, renotify, now, text=text, offer=offers[0].command)
