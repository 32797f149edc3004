"""The DNS feature: [dns]'s zone for the commands (!dns check, !dns sync) and the scheduled drift
check that alerts when the zone no longer says what the config asks for."""
from __future__ import annotations

from spbot.providers.dns.diff import RecordCheck
from spbot.providers.errors import ProviderError

from ...context import UserError
from ...feature import Check, Feature, Scheduled
from .drift import DriftWatch, report_drift
from .settings import DnsConfig, with_homeserver
from .zone import check_dns, drift_summary, provider_label

FIRST_CHECK_WITHIN = 60.0  # seconds after start, so a drift is seen soon after a restart


class DnsFeature(Feature):
    name = "dns"
    settings_model = DnsConfig
    settings: DnsConfig

    @classmethod
    async def doctor(cls, config) -> list[Check]:
        """The token readable, the zone readable with it, and whether it says what [dns] asks for."""
        settings: DnsConfig = config.settings(cls.name)
        if not settings.configured:
            return []
        zone = with_homeserver(settings, config.homeserver)
        try:
            checks = await check_dns(zone)
        except (UserError, ProviderError) as exc:
            return [Check("fail", f"{provider_label(zone)} zone {zone.domain}: {exc.what}",
                          exc.todo or "check the token (it needs the zone's read and write rights) and domain")]
        differ = drift_summary(checks)
        return [Check("ok", f"{provider_label(zone)} zone {zone.domain} readable with the token"),
                Check("warn" if differ else "ok",
                      f"records: {differ}" if differ else f"all {len(checks)} records as [dns] says",
                      "see !dns check, then !dns sync" if differ else "")]

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
