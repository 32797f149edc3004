"""The disk alert rules: warn / critical thresholds with hysteresis, "full within N days" from the
trend, and what an alert says (with an offer to grow the mount when it is a Hetzner volume)."""
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


async def apply_finding(host: Any, finding: Finding, renotify: float, now: float | None = None) -> None:
    """Fire the alert of a bad finding, clear (recovery notice if it was active) a good one. When the
    mount is a cloud volume the alert also offers to grow it: an admin's ✅ starts the approval."""
    mount = getattr(finding, "grow_mount", None)
    sections = set(getattr(host.config, "model_extra", None) or {})
    if finding.severity is None or not mount or not {"hetzner", "digitalocean"} & sections:
        await report(host.alerts, finding, renotify, now)
        return
    text, offer = finding.text, None
    grow = await grow_offer(host, mount)
    if grow is not None:
        text += "\n" + grow.alert_line
        offer = grow.command
    await report(host.alerts, finding, renotify, now, text=text, offer=offer)
