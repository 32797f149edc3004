"""[dns]: the zone, its provider, and what the records should say."""
from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from spbot.providers.dns import HttpPolicy
from spbot.providers.dns.records import DEFAULT_SUBDOMAINS, DomainConfig

from ...config import Duration, Secret, config_section


@config_section("dns")
class DnsConfig(BaseModel):
    """[dns]: the zone, its provider, and what the records should say."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["cloudflare", "desec"] | None = None
    domain: str | None = None
    token: Secret | None = None
    base_url: str | None = None  # the provider's API root; only tests change it
    ipv4: str | None = None
    ipv6: str | None = None
    subdomains: list[str] = Field(default_factory=lambda: list(DEFAULT_SUBDOMAINS))
    mail: bool = True
    dkim: str | None = None  # the DKIM TXT value, "v=DKIM1; k=rsa; p=…"
    dkim_selector: str = "selector"
    dmarc: str = "v=DMARC1; p=none"
    check_interval: Duration = 21600.0  # scheduled drift check; 0 turns it off
    timeout: Duration = 15.0
    max_retries: int = Field(3, ge=0, le=20)
    backoff: Duration = 1.0
    max_retry_wait: Duration = 60.0

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
