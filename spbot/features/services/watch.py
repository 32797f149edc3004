"""Health checks that speak first: failed systemd units and the TLS certificates of the family's domains.

Both run on the scheduler and go through the same alert machinery as the disk rules
(spbot/features/findings.py → the host's alerts): one alert per unit or domain and condition,
re-notified while it stays bad, a recovery notice when it clears, persisted across restarts.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from spbot.logs import get_logger
from spbot.system.services import FailedUnit, ServiceError, failed_units
from spbot.system.tls import CertStatus, check_certificate

from ..findings import Finding, report
from .rules import UNIT_PREFIX, ignored, tls_findings, unit_finding
from .settings import HealthSettings, ServicesSettings, parse_target

log = get_logger(__name__)

CHECK_ALERT = "health:failed-units-check"


class HealthWatch:
    def __init__(self, host: Any, settings: HealthSettings, services: ServicesSettings):
        self.host = host
        self.settings = settings
        self.services = services
        self.covered: set[str] = set()     # units an enabled service's own alerts watch

    def systemd_running(self) -> bool:
        return self.settings.systemd_dir.is_dir()

    async def failed(self) -> list[FailedUnit]:
        """Failed units that are not ignored; ServiceError when systemctl cannot answer."""
        units = await failed_units(self.services)
        return [u for u in units if not ignored(u.unit, self.settings.failed_units_ignore)
                and u.unit not in self.covered]

    async def check_units(self, now: float | None = None) -> None:
        """Scheduler job: an alert per failed unit, recovery when it is no longer failed."""
        if not self.systemd_running():
            return
        try:
            failed = await self.failed()
        except ServiceError as exc:
            await self._apply(Finding(CHECK_ALERT, "warning", f"I cannot check for failed services: {exc}",
                                      "check systemd on the server: systemctl --failed"), now)
            return
        except Exception:
            log.exception("failed_units_check_crashed")
            return
        await self._apply(Finding(CHECK_ALERT, None, "checking for failed services works again"), now)
        names = {u.unit for u in failed}
        for unit in failed:
            await self._apply(unit_finding(unit, self.services.units), now)
        for alert in await self.host.alerts.active(UNIT_PREFIX):
            unit = alert.key[len(UNIT_PREFIX):].rpartition(":")[0]
            if unit not in names:
                await self._apply(Finding(alert.key, None, f"{unit} runs again (no longer failed)"), now)

    async def check_tls(self, now: float | None = None) -> list[CertStatus]:
        """Scheduler job: every configured domain's certificate, checked concurrently."""
        s = self.settings
        targets = [parse_target(d) for d in s.tls_domains]
        try:
            statuses = await asyncio.gather(*(
                check_certificate(host, port, timeout=s.tls_timeout,
                                  ca_file=str(s.tls_ca_file) if s.tls_ca_file else None)
                for host, port in targets))
            for status in statuses:
                for finding in tls_findings(status, s):
                    await self._apply(finding, now)
        except Exception:
            log.exception("tls_check_crashed")
            return []
        return list(statuses)

    async def _apply(self, finding: Finding, now: float | None) -> None:
        await report(self.host.alerts, finding, self.settings.renotify, time.time() if now is None else now)
