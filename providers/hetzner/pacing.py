"""How the Hetzner adapter talks to the API: hcloud loaded on first use, our retry and rate-limit
rules in place of hcloud's, and failures explained in the admin's words (what failed, what to do)."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

from .settings import HetznerSettings, RetryPolicy

if TYPE_CHECKING:
    import requests
    from hcloud import Client

log = logging.getLogger("spbot.providers.hetzner")

T = TypeVar("T")

STATUS_PAGE = "https://status.hetzner.com"
TOKEN_HELP = ("Create a new Read & Write API token in the Hetzner Cloud Console "
              "(your project → Security → API tokens) and put it in the bot's configuration.")
OUTAGE_CODES = {"server_error", "service_error", "unavailable", "maintenance",
                "resource_unavailable", "bad_gateway", "timeout"}


def load_hcloud():
    """hcloud (and requests) are imported on first use only: they cost the idle bot ~8 MiB."""
    import hcloud
    import hcloud.server_types
    import requests
    return hcloud, requests


def explain(exc: Exception, what: str, settings: HetznerSettings, retries: int) -> str:
    """A message for a failed call after `retries` retries: what failed, why, what to do."""
    hcloud, requests = load_hcloud()
    APIException = hcloud.APIException
    if isinstance(exc, requests.Timeout):
        return (f"Hetzner Cloud API did not answer within {settings.timeout:g} s while {what} "
                f"(tried {retries + 1} times); check {STATUS_PAGE} and the server's network, "
                "then try again.")
    if isinstance(exc, requests.RequestException):
        return (f"Could not reach the Hetzner Cloud API while {what} "
                f"({type(exc).__name__}); check the server's network and DNS, then try again.")
    assert isinstance(exc, APIException)
    code, message = exc.code, exc.message
    if code == "unauthorized" or code == HTTPStatus.UNAUTHORIZED:
        return f"Hetzner rejected the API token: {message}. {TOKEN_HELP}"
    if code in ("forbidden", "token_readonly") or code == HTTPStatus.FORBIDDEN:
        return (f"Hetzner refused {what}: {message} ({code}). The bot needs a Read & Write "
                "API token for this project.")
    if code == "rate_limit_exceeded" or code == HTTPStatus.TOO_MANY_REQUESTS:
        return (f"Hetzner is still rate limiting after {retries} retries while {what} "
                f"({message}); wait a few minutes and try again.")
    if code in ("locked", "conflict"):
        return (f"Hetzner is busy: another action is still running on the server while {what} "
                f"({message}); try again when that has finished.")
    if code == "not_found" or code == HTTPStatus.NOT_FOUND:
        return f"Hetzner could not find what was needed for {what}: {message}."
    if code in OUTAGE_CODES or (isinstance(code, int) and code >= 500):
        return (f"The Hetzner Cloud API failed while {what} ({code}: {message}) after "
                f"{retries} retries; check {STATUS_PAGE} and try again later.")
    return f"Hetzner refused {what}: {message} ({code})."


class Pacing:
    """Our retry and rate-limit rules in place of hcloud's.

    Hetzner's limit is 3600 requests per hour and project; `RateLimit-Remaining` says what is
    left and one request comes back every second. `RateLimit-Reset` is when the FULL quota is
    back (about an hour when empty), so waiting for it would make every 429 cost the whole
    cap; we wait about a second per request instead, and pause before a request when the last
    answer said nothing is left (docs.hetzner.cloud, "Rate Limiting").

    hcloud has no public setting for its retry loop (`ClientBase.request`, which also re-sends
    a timed-out POST); `install` sets its `_retry_max_retries` to 0 and adds a response hook
    to its `_session`. Both exist in hcloud 2.6 to 2.27; pyproject.toml pins that range.
    """

    def __init__(self, policy: RetryPolicy):
        self._policy = policy
        self._local = threading.local()
        self._lock = threading.Lock()
        self._remaining: int | None = None
        self._seen_at = 0.0

    def install(self, client: Client) -> None:
        base = client._client
        missing = [a for a in ("_retry_max_retries", "_session") if not hasattr(base, a)]
        if missing:
            raise RuntimeError("this hcloud version lacks " + ", ".join(missing)
                               + "; install the version pyproject.toml asks for")
        base._retry_max_retries = 0
        base._session.hooks["response"].append(self.remember)

    def remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._local.status = response.status_code
        value = response.headers.get("RateLimit-Remaining")
        if value is not None and value.strip().isdigit():
            with self._lock:
                self._remaining, self._seen_at = int(value), time.monotonic()

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """In the worker thread: the call, remembering the HTTP status of its last answer."""
        self._local.status = 0
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            exc.spbot_status = self._local.status  # type: ignore[attr-defined]
            raise

    async def before_request(self) -> None:
        """When the last answer said no request is left, wait until one has come back."""
        with self._lock:
            remaining, seen_at = self._remaining, self._seen_at
        if remaining is None or remaining >= 1:
            return
        wait = self._policy.refill_seconds - (time.monotonic() - seen_at)
        if wait > 0:
            log.info("Hetzner Cloud API: no requests left this hour; pacing %.2f s", wait)
            await asyncio.sleep(min(wait, self._policy.rate_limit_max_wait))
        with self._lock:
            if self._seen_at == seen_at:
                self._remaining = None  # one request has come back since

    def retry_wait(self, exc: Exception, attempt: int, write: bool) -> float | None:
        """Seconds to wait before retrying, or None to give up now."""
        hcloud, requests = load_hcloud()
        status = getattr(exc, "spbot_status", 0)
        backoff = min(self._policy.backoff_cap, self._policy.backoff_base * 2 ** attempt)
        if isinstance(exc, requests.Timeout):
            return None if write else backoff
        if not isinstance(exc, hcloud.APIException):
            return None
        if exc.code == "rate_limit_exceeded" or status == 429:
            return min(self._policy.rate_limit_max_wait,
                       self._policy.refill_seconds * (attempt + 1))
        if exc.code == "conflict":
            return backoff
        if write:
            return None
        if exc.code in ("bad_gateway", "timeout") or status in (502, 503, 504) or status >= 500:
            return backoff
        return None

    @staticmethod
    def describe(exc: Exception) -> str:
        status = getattr(exc, "spbot_status", 0)
        code = getattr(exc, "code", None) or type(exc).__name__
        return f"{status or 'nothing'} ({code})"
