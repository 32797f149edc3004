"""What a watching feature has found: one condition of one thing (a mount, a unit, a certificate), bad
(with a severity) or good, and the step that turns it into an alert or a recovery notice through the
host's alerts (one alert per key, persisted, re-notified while it holds). Shared by the disk and the
services features."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Finding:
    """One condition as the rules see it now: bad (severity) or good (severity None)."""
    key: str
    severity: str | None
    text: str
    todo: str = ""


async def report(alerts: Any, finding: Finding, renotify: float, now: float | None = None,
                 text: str | None = None, offer: str | None = None) -> None:
    """Fire the alert of a bad finding (with `text` instead of its own when given, and an offer an
    admin's ✅ starts), clear a good one (a recovery notice if it was active)."""
    if finding.severity is None:
        await alerts.clear(finding.key, finding.text, now=now)
        return
    await alerts.fire(finding.key, finding.severity, finding.text if text is None else text, finding.todo,
                      renotify=renotify, now=now, offer=offer)
