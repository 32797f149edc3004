"""[dns]: the zone, its provider, and what the records should say."""
from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, model_validator

from spbot.providers.dns import HttpPolicy
from spbot.providers.dns.records import DEFAULT_SUBDOMAINS, DomainConfig

from ...config import Duration, Secret, config_section
from spbot.model import Model


@config_section("dns")
class DnsConfig(Model):
    """[dns]: the zone, its provider, and what the records should say."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["cloudflare", "desec"] | None = Field(
        None, examples=["desec"], description="Who holds the zone: cloudflare or desec.")
    domain: str | None = Field(None, examples=["example.org"], description="The zone (the family's domain).")
    token: Secret | None = Field(
        None, examples=[{"file": "/etc/spbot/dns-token"}],
        description="An API token that may read and change the zone's records.")
    base_url: str | None = Field(None, description="The provider's API root (only tests change it).")
    ipv4: str | None = Field(None, examples=["203.0.113.10"],
                             description="The server's public IPv4 address: the A records' value.")
    ipv6: str | None = Field(None, examples=["2001:db8::10"],
                             description="The server's public IPv6 address: the AAAA records' value "
                                         "(unset: no AAAA records).")
    subdomains: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SUBDOMAINS),
        description="The names under the domain that point to the server (the domain itself always "
                    "does; so does the homeserver's name when it lies in the zone).")
    mail: bool = Field(True, description="The server receives mail: MX, SPF and DMARC records are expected.")
    dkim: str | None = Field(
        None, examples=["v=DKIM1; k=rsa; p=MIIBIjANBgkqh..."],
        description="The DKIM TXT value of the mail server (unset: no DKIM record is expected).")
    dkim_selector: str = Field("selector", description="The DKIM record's name: <selector>._domainkey.")
    dmarc: str = Field("v=DMARC1; p=none", description="The DMARC TXT value at _dmarc.")
    check_interval: Duration = Field(
        21600.0, description="How often the zone is compared with these records (an alert when they "
                             "differ); 0: never.")
    timeout: Duration = Field(15.0, description="How long one API request may take.")
    max_retries: int = Field(3, ge=0, le=20, description="How often a failed request is tried again.")
    backoff: Duration = Field(1.0, description="The first wait before a retry; it doubles each time.")
    max_retry_wait: Duration = Field(60.0, description="The longest wait before a retry (also when the "
                                                       "provider asks to slow down).")

    @model_validator(mode="after")
    def _complete(self) -> DnsConfig:
        if self.provider is None:
            if self.domain or self.token:
                raise ValueError('say which provider holds the zone: provider = "cloudflare" '
                                 'or "desec"')
            return self
        missing = [name for name in ("domain", "token", "ipv4") if getattr(self, name) is None]
        if missing:
            raise ValueError(f"with provider = \"{self.provider}\" also give "
                             + ", ".join(missing))
        self.domain_config()  # the addresses must parse
        return self

    @property
    def configured(self) -> bool:
        return self.provider is not None

    def domain_config(self) -> DomainConfig:
        return DomainConfig(domain=self.domain, ipv4=self.ipv4, ipv6=self.ipv6,
                            subdomains=tuple(self.subdomains), mail=self.mail, dkim=self.dkim,
                            dkim_selector=self.dkim_selector, dmarc=self.dmarc)

    def policy(self) -> HttpPolicy:
        return HttpPolicy(timeout=self.timeout, max_retries=self.max_retries,
                          backoff=self.backoff, max_retry_wait=self.max_retry_wait)


def with_homeserver(settings: DnsConfig, homeserver: str) -> DnsConfig:
    """The homeserver's own name is managed too when it lies in the zone: a server_name example.org
    that delegates (.well-known/matrix/server) to chat.example.org needs chat's A/AAAA records."""
    host = (urlsplit(homeserver).hostname or "").rstrip(".").lower()
    domain = (settings.domain or "").rstrip(".").lower()
    if not domain or not host.endswith("." + domain):
        return settings
    name = host[: -len(domain) - 1]
    if name in settings.subdomains:
        return settings
    return settings.model_copy(update={"subdomains": [*settings.subdomains, name]})
