"""The server provider's settings: [cloud] provider picks Hetzner ([hetzner]) or DigitalOcean
([digitalocean]); both sections share how the API is paced and how volumes are found and grown on
this machine (`ServerConfig`)."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...config import Duration, Secret, config_section

if TYPE_CHECKING:
    from spbot.providers.digitalocean import DigitalOceanSettings
    from spbot.providers.hetzner import HetznerSettings

ProviderName = Literal["hetzner", "digitalocean"]


class ServerConfig(BaseModel):
    """What [hetzner] and [digitalocean] have in common: the token, the API's pacing, and how the
    bot finds and grows the provider's volumes on this machine."""

    model_config = ConfigDict(extra="forbid")

    section: ClassVar[ProviderName]
    label: ClassVar[str]  # the provider as replies name it
    console: ClassVar[str]  # where an admin does by hand what the bot cannot
    types_url: ClassVar[str]  # the provider's list of server types and prices
    currency: ClassVar[str]  # of its prices
    max_volume_gb: ClassVar[int]  # its largest volume

    token: Secret | None = None
    timeout: Duration = 30.0
    poll_interval: Duration = 1.0
    action_timeout: Duration = 900.0
    shutdown_timeout: Duration = 120.0
    max_retries: int = Field(5, ge=0, le=20)
    backoff_base: Duration = 1.0
    backoff_cap: Duration = 30.0
    rate_limit_max_wait: Duration = 60.0
    # None: the bot runs on the server if one of its addresses is on a local interface.
    bot_runs_on_server: bool | None = None
    by_id_dir: Path = Path("/dev/disk/by-id")
    findmnt: str = "findmnt"
    resize2fs: str = "resize2fs"
    xfs_growfs: str = "xfs_growfs"
    grow_timeout: Duration = 600.0
    volume_grow_step_gb: int = Field(10, ge=1, le=16384)
    # Per GB and month before tax, in the provider's currency, when its price list says nothing.
    volume_price_per_gb_month: Decimal | None = None

    @property
    def configured(self) -> bool:
        return self.token is not None


MAX_VOLUME_GB = 10240  # Hetzner's largest volume


@config_section("hetzner")
class HetznerConfig(ServerConfig):
    """[hetzner]: the Hetzner Cloud server this bot manages (`server`, its name or id)."""

    section: ClassVar[ProviderName] = "hetzner"
    label: ClassVar[str] = "Hetzner"
    console: ClassVar[str] = "the Hetzner Cloud Console"
    types_url: ClassVar[str] = "https://www.hetzner.com/cloud"
    currency: ClassVar[str] = "EUR"
    max_volume_gb: ClassVar[int] = MAX_VOLUME_GB

    server: str | int | None = None  # the server's name (or id) in the Hetzner project
    api_endpoint: str = "https://api.hetzner.cloud/v1"

    @model_validator(mode="after")
    def _both_or_neither(self) -> HetznerConfig:
        if (self.token is None) != (self.server is None):
            raise ValueError('give both token = {file = "..."} and server = "<server name>"')
        return self

    def provider_settings(self, token: str) -> HetznerSettings:
        from spbot.providers.hetzner import HetznerSettings, RetryPolicy
        return HetznerSettings(
            token=token, server=self.server, api_endpoint=self.api_endpoint,
            timeout=self.timeout, poll_interval=self.poll_interval,
            action_timeout=self.action_timeout, shutdown_timeout=self.shutdown_timeout,
            retry=RetryPolicy(max_retries=self.max_retries, backoff_base=self.backoff_base,
                              backoff_cap=self.backoff_cap,
                              rate_limit_max_wait=self.rate_limit_max_wait))


@config_section("digitalocean")
class DigitalOceanConfig(ServerConfig):
    """[digitalocean]: the droplet this bot manages (`droplet`, its name or id; left out, the
    droplet the bot runs on, asked from the metadata service)."""

    section: ClassVar[ProviderName] = "digitalocean"
    label: ClassVar[str] = "DigitalOcean"
    console: ClassVar[str] = "the DigitalOcean control panel"
    types_url: ClassVar[str] = "https://slugs.do-api.dev"
    currency: ClassVar[str] = "USD"
    max_volume_gb: ClassVar[int] = 16384

    droplet: str | int | None = None
    api_endpoint: str = "https://api.digitalocean.com"
    metadata_url: str | None = "http://169.254.169.254/metadata/v1/id"  # "" or None: never ask
    poll_interval: Duration = 2.0
    # DigitalOcean has no price API for volumes; its pricing page: $0.10 per GiB and month.
    volume_price_per_gb_month: Decimal | None = Decimal("0.10")

    def provider_settings(self, token: str) -> DigitalOceanSettings:
        from spbot.providers.digitalocean import DigitalOceanSettings, RetryPolicy
        return DigitalOceanSettings(
            token=token, droplet=self.droplet, api_endpoint=self.api_endpoint,
            metadata_url=self.metadata_url or None, timeout=self.timeout,
            poll_interval=self.poll_interval, action_timeout=self.action_timeout,
            shutdown_timeout=self.shutdown_timeout,
            retry=RetryPolicy(max_retries=self.max_retries, backoff_base=self.backoff_base,
                              backoff_cap=self.backoff_cap,
                              rate_limit_max_wait=self.rate_limit_max_wait))


@config_section("cloud")
class CloudConfig(BaseModel):
    """[cloud]: which provider's section the server feature uses. Left out, the one of [hetzner]
    and [digitalocean] that is set up."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderName | None = None


def chosen(cloud: CloudConfig, hetzner: HetznerConfig,
           digitalocean: DigitalOceanConfig) -> tuple[ServerConfig, str | None]:
    """The provider's settings, and why they cannot be used (None when they can)."""
    if cloud.provider == "digitalocean" or (cloud.provider is None and digitalocean.configured
                                            and not hetzner.configured):
        return digitalocean, None
    if cloud.provider is None and digitalocean.configured:
        return hetzner, ("Both [hetzner] and [digitalocean] are set up, and [cloud] does not say "
                         "which one manages this server.")
    return hetzner, None
