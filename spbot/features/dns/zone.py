"""The zone at its provider (Cloudflare or deSEC) against the records the config asks for."""
from __future__ import annotations

from contextlib import asynccontextmanager

from spbot.providers.dns import make_provider
from spbot.providers.dns.diff import RecordCheck, Status, check_zone
from spbot.providers.dns.records import DnsRecord, expected_records

from ..common import read_token
from .settings import DnsConfig


@asynccontextmanager
async def dns_zone(settings: DnsConfig):
    token = read_token(settings.token, f"{settings.provider} API token")
    provider = make_provider(settings.provider, settings.domain, token,
                             base_url=settings.base_url, policy=settings.policy())
    try:
        yield provider
    finally:
        await provider.aclose()


def expected(settings: DnsConfig) -> list[DnsRecord]:
    return expected_records(settings.domain_config())


async def check_dns(settings: DnsConfig) -> list[RecordCheck]:
    async with dns_zone(settings) as zone:
        return await check_zone(zone, expected(settings))


def provider_label(settings: DnsConfig) -> str:
    return {"cloudflare": "Cloudflare", "desec": "deSEC"}[settings.provider]


def drift_summary(checks: list[RecordCheck]) -> str:
    """`git A missing, cloud A different`."""
    return ", ".join(f"{c.expected.name} {c.expected.type} {c.status.value}"
                     for c in checks if c.status is not Status.OK)
