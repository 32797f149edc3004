"""The zone drifting away from the config: one alert while it differs, a recovery notice once it
matches again, and a separate alert when the provider cannot be read for a while."""
from __future__ import annotations

from typing import Any

from spbot.providers.dns.diff import RecordCheck, Status
from spbot.providers.errors import ProviderError

from ...context import UserError
from ...logs import get_logger
from .settings import DnsConfig
from .zone import check_dns, drift_summary, provider_label

log = get_logger(__name__)

DRIFT_ALERT = "dns:drift"
UNREACHABLE_ALERT = "dns:unreachable"


class DriftWatch:
    """The scheduled check: one alert while the zone differs from the config (the alerts module
    deduplicates it), a recovery notice once it matches again. Unreachable providers alert only
    after `patience` failures in a row, so one slow answer stays quiet."""

    def __init__(self, alerts: Any, settings: DnsConfig, patience: int = 2):
        self.alerts = alerts
        self.settings = settings
        self.patience = patience
        self.failures = 0

    async def run(self) -> None:
        settings = self.settings
        try:
            checks = await check_dns(settings)
        except (UserError, ProviderError) as exc:
            self.failures += 1
            log.warning("dns_check_failed", failures=self.failures, reason=exc.what[:200])
            if self.failures >= self.patience:
                await self.alerts.fire(
                    UNREACHABLE_ALERT, "warning",
                    f"I cannot check the DNS records of {settings.domain}: {exc.what}",
                    exc.todo or "Check the DNS token and the provider's status page.")
            return
        self.failures = 0
        await self.alerts.clear(UNREACHABLE_ALERT,
                                f"the DNS records of {settings.domain} can be read again")
        await report_drift(self.alerts, settings, checks)


async def report_drift(alerts: Any, settings: DnsConfig, checks: list[RecordCheck]) -> None:
    if any(c.status is not Status.OK for c in checks):
        await alerts.fire(
            DRIFT_ALERT, "warning",
            f"DNS of {settings.domain} at {provider_label(settings)} differs from the "
            f"configuration: {drift_summary(checks)}.",
            "Send !dns check for the details, then !dns sync to fix it (needs another admin).")
    else:
        await alerts.clear(DRIFT_ALERT, f"DNS of {settings.domain} matches the configuration "
                                        "again")
