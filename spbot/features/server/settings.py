"""The server provider's settings: [cloud] provider picks Hetzner ([hetzner]) or DigitalOcean
([digitalocean]); both sections share how the API is paced and how volumes are found and grown on
this machine (`ServerConfig`)."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from ...config import Duration, Secret, config_section
from spbot.model import Model

if TYPE_CHECKING:
    from spbot.providers.digitalocean import DigitalOceanSettings
    from spbot.providers.hetzner import HetznerSettings

ProviderName = Literal["hetzner", "digitalocean"]


class ServerConfig(Model):
    """What [hetzner] and [digitalocean] have in common: the token, the API's pacing, and how the
    bot finds and grows the provider's volumes on this machine."""

    model_config = ConfigDict(extra="forbid")

    section: ClassVar[ProviderName]
    label: ClassVar[str]  # the provider as replies name it
    console: ClassVar[str]  # where an admin does by hand what the bot cannot
    types_url: ClassVar[str]  # the provider's list of server types and prices
    currency: ClassVar[str]  # of its prices
    max_volume_gb: ClassVar[int]  # its largest volume

    token: Secret | None = Field(
        None, examples=[{"file": "/etc/spbot/cloud-token"}],
        description="An API token of the project with read and write access (the provider's console "
                    "makes it).")
    timeout: Duration = Field(30.0, description="How long one API request may take.")
    poll_interval: Duration = Field(1.0, description="How often a running action (a reboot, a resize) is "
                                                     "asked whether it has finished.")
    action_timeout: Duration = Field(900.0, description="How long one action may take before the bot "
                                                        "gives up waiting for it.")
    shutdown_timeout: Duration = Field(
        120.0, description="How long the server may take to shut down cleanly before it is powered off "
                           "(before a type change).")
    max_retries: int = Field(5, ge=0, le=20, description="How often a failed or rate-limited request is "
                                                         "tried again.")
    backoff_base: Duration = Field(1.0, description="The first wait before a retry; it doubles each time.")
    backoff_cap: Duration = Field(30.0, description="The longest wait between two retries.")
    rate_limit_max_wait: Duration = Field(
        60.0, description="The longest the bot waits when the API's rate limit is used up.")
    bot_runs_on_server: bool | None = Field(
        None, description="Whether the bot runs on the managed server (a reboot or type change also "
                          "stops the bot). Unset: yes when one of the server's addresses is on this "
                          "machine.")
    by_id_dir: Path = Field(Path("/dev/disk/by-id"),
                            description="Where udev names the disks (how a mount is matched to its volume).")
    findmnt: str = Field("findmnt", description="The findmnt program (lists the mounts).")
    resize2fs: str = Field("resize2fs", description="The resize2fs program (grows an ext4 filesystem).")
    xfs_growfs: str = Field("xfs_growfs", description="The xfs_growfs program (grows an XFS filesystem).")
    grow_timeout: Duration = Field(600.0, description="How long growing a filesystem may take.")
    volume_grow_step_gb: int = Field(
        10, ge=1, le=16384, description="How many GB the disk alert's offer adds to a full volume.")
    volume_price_per_gb_month: Decimal | None = Field(
        None, description="The volume price per GB and month before tax, in the provider's currency, "
                          "shown with a grow offer when the provider's price list says nothing (unset: "
                          "no price shown).")

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

    server: str | int | None = Field(
        None, examples=["family-server"],
        description="The server's name (or id) in the Hetzner Cloud project; needed with token.")
    api_endpoint: str = Field("https://api.hetzner.cloud/v1",
                              description="The Hetzner Cloud API (only tests change it).")

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

    droplet: str | int | None = Field(
        None, examples=["family-server"],
        description="The droplet's name (or id). Unset: the droplet the bot runs on, asked from the "
                    "metadata service.")
    api_endpoint: str = Field("https://api.digitalocean.com",
                              description="The DigitalOcean API (only tests change it).")
    metadata_url: str | None = Field(
        "http://169.254.169.254/metadata/v1/id",
        description="Where a droplet learns its own id when droplet is unset (\"\": never ask).")
    poll_interval: Duration = Field(2.0, description="How often a running action (a reboot, a resize) is "
                                                     "asked whether it has finished.")
    # DigitalOcean has no price API for volumes; its pricing page: $0.10 per GiB and month.
    volume_price_per_gb_month: Decimal | None = Field(
        Decimal("0.10"), description="The volume price per GB and month before tax, in US dollars, shown "
                                     "with a grow offer (DigitalOcean has no price API for volumes).")

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
class CloudConfig(Model):
    """[cloud]: which provider's section the server feature uses. Left out, the one of [hetzner]
    and [digitalocean] that is set up."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderName | None = Field(
        None, examples=["hetzner"],
        description="hetzner or digitalocean; needed only when both sections are set up.")


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
