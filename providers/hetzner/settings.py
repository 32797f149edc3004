"""Where and how to reach Hetzner Cloud, and the error its adapter raises."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..cloud_server import CloudError


class HetznerError(CloudError):
    """A Hetzner Cloud call failed; the message names what failed and what to do."""


# -- settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up on one API request."""

    max_retries: int = 5
    backoff_base: float = 1.0  # seconds; doubles per retry
    backoff_cap: float = 30.0
    rate_limit_max_wait: float = 60.0  # cap on one wait for the rate limit
    refill_seconds: float = 1.0  # Hetzner gives back one request per second


@dataclass(frozen=True)
class HetznerSettings:
    """Where and how to reach Hetzner; `server` is the managed server's name or id."""

    token: str = field(repr=False)
    server: str | int
    api_endpoint: str = "https://api.hetzner.cloud/v1"
    timeout: float = 30.0  # per HTTP request
    poll_interval: float = 1.0  # between polls of a running action
    action_timeout: float = 900.0  # give up waiting for one action after this
    shutdown_timeout: float = 120.0  # graceful shutdown before a hard power-off
    retry: RetryPolicy = RetryPolicy()
