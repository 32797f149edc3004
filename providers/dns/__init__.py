"""DNS providers (Cloudflare, deSEC): the interface they share and their HTTP discipline.

    from spbot.providers.dns import make_provider
    from spbot.providers.dns.records import DomainConfig, expected_records
    from spbot.providers.dns.diff import check_zone, sync_zone

    async with make_provider("desec", "example.org", token) as dns:
        checks = await check_zone(dns, expected_records(config))   # ok / missing / different
        applied = await sync_zone(dns, expected_records(config))   # writes only the differences

Every request has a timeout; 429 answers are retried after `Retry-After` (bounded), server
errors and timeouts of idempotent requests with a short back-off. What still fails becomes a
`DnsError` whose message names the provider and what to do. Tokens go into the
Authorization header only and never into a message or log line.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ProviderError

if TYPE_CHECKING:
    import httpx

    from .records import DnsRecord, RecordChange

log = logging.getLogger(__name__)

__all__ = ["DnsError", "DnsProvider", "HttpPolicy", "make_provider", "send"]

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})


class DnsError(ProviderError):
    """A DNS provider call failed; the message names the provider and what to do."""


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts and retries for one provider."""

    timeout: float = 15.0  # seconds per request
    max_retries: int = 3
    backoff: float = 1.0  # seconds, doubled per retry, for 5xx and timeouts
    max_retry_wait: float = 60.0  # cap on a Retry-After wait


class DnsProvider(Protocol):
    """What diff.check_zone and diff.sync_zone need from a provider."""

    label: str  # "Cloudflare", "deSEC": used in messages
    domain: str

    async def list_records(self) -> list[DnsRecord]:
        """Every record of the zone (all pages), names relative to the zone ("@" = apex)."""

    async def apply(self, changes: Sequence[RecordChange]) -> None:
        """Create or update records so the zone holds what the changes ask for."""

    async def aclose(self) -> None: ...


def make_provider(kind: str, domain: str, token: str, *, base_url: str | None = None,
                  policy: HttpPolicy | None = None) -> DnsProvider:
    """A provider by name: "cloudflare" or "desec"."""
    options: dict[str, Any] = {"policy": policy or HttpPolicy()}
    if base_url:
        options["base_url"] = base_url
    if kind.lower() == "cloudflare":
        from .cloudflare import CloudflareDns
        return CloudflareDns(domain, token, **options)
    if kind.lower() == "desec":
        from .desec import DesecDns
        return DesecDns(domain, token, **options)
    raise ValueError(f"unknown DNS provider {kind!r}; expected cloudflare or desec")


async def send(client: httpx.AsyncClient, label: str, method: str, url: str, *,
               policy: HttpPolicy, what: str, idempotent: bool | None = None,
               **kwargs: Any) -> httpx.Response:
    """One API request with the retry rules above; returns the last response for the
    provider to read (its error envelope is provider-specific)."""
    import httpx                     # loaded with a provider's client, not with the settings
    idempotent = method in IDEMPOTENT if idempotent is None else idempotent
    attempts = policy.max_retries + 1
    for attempt in range(attempts):
        final = attempt == attempts - 1
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            if final or not idempotent:
                raise DnsError(
                    f"{label} did not answer within {policy.timeout:g} s while {what} "
                    f"(tried {attempt + 1} times); check {label}'s status page and the "
                    "server's network, then try again.") from exc
            await _pause(label, "no answer", attempt, policy, _backoff(policy, attempt))
            continue
        except httpx.TransportError as exc:
            raise DnsError(f"Could not reach {label} while {what} ({type(exc).__name__}); "
                           "check the server's network and DNS, then try again.") from exc
        wait = _retry_wait(response, policy, attempt, idempotent)
        if wait is None or final:
            return response
        await _pause(label, str(response.status_code), attempt, policy, wait)
    raise AssertionError("unreachable")


def _retry_wait(response: httpx.Response, policy: HttpPolicy, attempt: int,
                idempotent: bool) -> float | None:
    """How long to wait before retrying this response, or None to not retry."""
    if response.status_code == 429:
        after = retry_after_seconds(response)
        wait = _backoff(policy, attempt) if after is None else after
        return min(wait, policy.max_retry_wait)
    if response.status_code >= 500 and idempotent:
        return _backoff(policy, attempt)
    return None


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (it may be a number or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _backoff(policy: HttpPolicy, attempt: int) -> float:
    return min(policy.max_retry_wait, policy.backoff * 2 ** attempt)


async def _pause(label: str, why: str, attempt: int, policy: HttpPolicy, wait: float) -> None:
    log.info("%s answered %s; retry %d of %d in %.2f s", label, why, attempt + 1,
             policy.max_retries, wait)
    await asyncio.sleep(wait)
