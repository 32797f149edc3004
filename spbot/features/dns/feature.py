"""The DNS feature: [dns]'s zone for the commands (!dns check, !dns sync) and the scheduled drift
check that alerts when the zone no longer says what the config asks for."""
from __future__ import annotations

from spbot.providers.dns.diff import RecordCheck

from ...context import UserError
from ...feature import Feature, Scheduled
from .drift import DriftWatch, report_drift
from .settings import DnsConfig, with_homeserver

FIRST_CHECK_WITHIN = 60.0  # seconds after start, so a drift is seen soon after a restart


class DnsFeature(Feature):
    name = "dns"
    settings_model = DnsConfig
    settings: DnsConfig

    def zone_settings(self) -> DnsConfig:
        """[dns] with the homeserver's own name added when it lies in the zone."""
        return with_homeserver(self.settings, self.host.config.homeserver)

    def require_settings(self) -> DnsConfig:
        """The zone's settings, or a UserError saying how to set DNS up."""
        if not self.settings.configured:
            raise UserError("DNS is not set up for this bot.",
                            'Add [dns] with provider = "cloudflare" or "desec", domain, '
                            'token = {file = "..."} and ipv4 to the config, then restart the bot.')
        return self.zone_settings()

    def scheduled(self) -> list[Scheduled]:
        interval = self.settings.check_interval
        if not self.settings.configured or not interval:
            return []
        watch = DriftWatch(self.host.alerts, self.zone_settings())
        return [Scheduled("dns-drift", "DNS drift check", watch.run, interval=interval,
                          first_in=min(interval, FIRST_CHECK_WITHIN))]

    async def report_drift(self, settings: DnsConfig, checks: list[RecordCheck]) -> None:
        """Alert while the zone differs from the config; clear the alert once it matches."""
        await report_drift(self.host.alerts, settings, checks)
