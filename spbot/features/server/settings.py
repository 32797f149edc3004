"""[hetzner]: the server this bot manages, and how its volumes are found and grown locally."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from spbot.providers.hetzner import HetznerSettings, RetryPolicy

from ...config import Duration, Secret, config_section

MAX_VOLUME_GB = 10240  # Hetzner's largest volume


@config_section("hetzner")
class HetznerConfig(BaseModel):
    """[hetzner]: the server this bot manages, and how volumes are found and grown locally."""

    model_config = ConfigDict(extra="forbid")

    token: Secret | None = None
    server: str | int | None = None  # the server's name (or id) in the Hetzner project
    api_endpoint: str = "https://api.hetzner.cloud/v1"
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
    volume_grow_step_gb: int = Field(10, ge=1, le=MAX_VOLUME_GB)
    # EUR per GB and month without VAT, used only when Hetzner's price list cannot be read.
    volume_price_per_gb_month: Decimal | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> HetznerConfig:
        if (self.token is None) != (self.server is None):
            raise ValueError('give both token = {file = "..."} and server = "<server name>"')
        return self

    @property
    def configured(self) -> bool:
        return self.token is not None

    def provider_settings(self, token: str) -> HetznerSettings:
        return HetznerSettings(
            token=token, server=self.server, api_endpoint=self.api_endpoint,
            timeout=self.timeout, poll_interval=self.poll_interval,
            action_timeout=self.action_timeout, shutdown_timeout=self.shutdown_timeout,
            retry=RetryPolicy(max_retries=self.max_retries, backoff_base=self.backoff_base,
                              backoff_cap=self.backoff_cap,
                              rate_limit_max_wait=self.rate_limit_max_wait))
