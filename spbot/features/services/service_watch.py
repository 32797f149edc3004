"""Alerts per enabled service: a unit or container down (critical, at once), its health check failing
for longer than the service's `unhealthy_after` (warning), and the recovery notices. Through the host's
alerts like the other health checks: one alert per service and condition, re-notified while it holds."""
from __future__ import annotations

import time
from typing import Any

from spbot.logs import get_logger

from ..findings import Finding, report
from .definition import Definition
from .state import Controller, ServiceState

log = get_logger(__name__)
PREFIX = "service:"


class ServiceWatch:
    def __init__(self, host: Any, controller: Controller, services: dict[str, Definition],
                 unhealthy_after: dict[str, float], renotify: float):
        self.host = host
        self.controller = controller
        self.services = services
        self.unhealthy_after = unhealthy_after
        self.renotify = renotify
        self.failing_since: dict[str, float] = {}     # service → when its health check began to fail

    def units(self) -> set[str]:
        """The units the service alerts cover (the failed-units check leaves them to these)."""
        return {u for spec in self.services.values() for u in spec.all_units}

    async def check(self, now: float | None = None) -> None:
        """Scheduler job: every enabled service's state and health, one after the other."""
        now = time.time() if now is None else now
        for name, spec in self.services.items():
            try:
                state = await self.controller.state(spec)
                for finding in self.findings(state, now):
                    await report(self.host.alerts, finding, self.renotify, now)
            except Exception:
                log.exception("service_check_crashed", service=name)

    def findings(self, state: ServiceState, now: float) -> list[Finding]:
        name = state.name
        if state.error:
            return []                        # systemctl or docker did not answer: nothing is known
        down = Finding(f"{PREFIX}{name}:down", None, f"{name} runs again")
        health = Finding(f"{PREFIX}{name}:health", None, f"{name} passes its health check again")
        if state.down():
            down.severity = "critical"
            down.text = f"{name} is down: {', '.join(state.down())} not running"
            down.todo = f"read its log with !service logs {name}, then try !service restart {name}"
            self.failing_since.pop(name, None)
            return [down]
        if state.http is not None and not state.http.ok:
            first = self.failing_since.setdefault(name, now)
            minutes = (now - first) / 60
            if now - first >= self.unhealthy_after.get(name, 300.0):
                health.severity = "warning"
                health.text = (f"{name} runs but fails its health check for {minutes:.0f} min: "
                               f"{state.http.text}")
                health.todo = f"read its log with !service logs {name}; !service restart {name} may help"
                return [down, health]
            return [down]                    # not yet long enough to alert; no recovery either
        self.failing_since.pop(name, None)
        return [down, health]
