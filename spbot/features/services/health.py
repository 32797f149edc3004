"""A service's health: its units active (its containers running) and, where the definition names one,
an answer of its local HTTP endpoint (Nextcloud's status.php, Gitea's /api/healthz, Vaultwarden's /alive,
Synapse's /health)."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from .definition import HealthCheck

MAX_BODY = 64_000


@dataclass
class HttpResult:
    ok: bool
    text: str              # "HTTP 200 in 12 ms" or what went wrong


async def check_http(check: HealthCheck) -> HttpResult | None:
    """GET the health URL; None when the definition has none."""
    if not check.url:
        return None
    started = time.monotonic()
    try:
        timeout = aiohttp.ClientTimeout(total=check.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(check.url, allow_redirects=False) as answer:
                body = (await answer.content.read(MAX_BODY)).decode(errors="replace")
                status = answer.status
    except asyncio.TimeoutError:
        return HttpResult(False, f"no answer from {check.url} within {check.timeout:.0f}s")
    except aiohttp.ClientError as exc:
        reason = getattr(exc, "strerror", None) or exc.__class__.__name__
        return HttpResult(False, f"{check.url} cannot be reached ({reason})")
    ms = (time.monotonic() - started) * 1000
    if status != check.expect_status:
        return HttpResult(False, f"{check.url} answered HTTP {status} (expected {check.expect_status})")
    if check.expect_text and check.expect_text not in body:
        return HttpResult(False, f"{check.url} answered HTTP {status} without {check.expect_text!r}")
    return HttpResult(True, f"HTTP {status} in {ms:.0f} ms")
