"""One DigitalOcean API request through pydo: our bounded retries, rate-limit pacing, pagination
and the translation of every failure into `DigitalOceanError`.

pydo (azure-core underneath) runs blocking requests; each runs in `asyncio.to_thread`. pydo's own
azure-core retry policy is replaced by `RetryPolicy.no_retries()` so only the rules here run:
- 429: wait until `ratelimit-reset` ("the time when the oldest request will expire", Unix
  seconds; shared/headers.yml), bounded by `rate_limit_max_wait`, then try again (nothing was
  done, so writes too). DigitalOcean allows 5000 requests per hour and 250 per minute.
- `ratelimit-remaining: 0` on the last answer: pause until that reset before the next request.
- 5xx and no answer: retried with backoff for reads only; a write that may have reached
  DigitalOcean is never sent twice.
- Everything else fails at once, with what happened and what to do.

pydo returns the error envelope as the result (instead of raising) for some statuses it lists
as expected, e.g. 404 on GET /v2/droplets/{id}; `call` passes pydo's `cls` hook to see every
answer's status and headers and turns those bodies into errors too.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .models import DigitalOceanError, DigitalOceanSettings

log = logging.getLogger(__name__)

STATUS_PAGE = "https://status.digitalocean.com"
TOKEN_HELP = ("Create a personal access token with the scopes the bot needs (listed in the "
              "README's cloud provider section) in the DigitalOcean control panel → API → Tokens, "
              "and put it in the bot's configuration.")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _pydo():
    """pydo and azure-core are imported on first use only: the idle bot does not pay for them."""
    import pydo
    from azure.core import exceptions
    from azure.core.pipeline.policies import RetryPolicy
    return pydo, exceptions, RetryPolicy


@dataclass(frozen=True)
class Answer:
    """A successful answer: HTTP status, JSON body and headers."""

    status: int
    body: Any
    headers: dict[str, str]


class Api:
    """The pydo client and the rules around each request."""

    def __init__(self, settings: DigitalOceanSettings, client: Any = None):
        self._settings = settings
        self._plain_http = urlsplit(settings.api_endpoint).scheme == "http"
        if self._plain_http and urlsplit(settings.api_endpoint).hostname not in LOOPBACK:
            raise DigitalOceanError(
                f"The DigitalOcean API endpoint {settings.api_endpoint} is not HTTPS.",
                "Use https://api.digitalocean.com; the token must never travel unencrypted.")
        pydo, _, RetryPolicy = _pydo()
        self.client = client or pydo.Client(
            settings.token, endpoint=settings.api_endpoint,
            retry_policy=RetryPolicy.no_retries(),
            connection_timeout=settings.timeout, read_timeout=settings.timeout,
            user_agent="spbot")
        self._lock = threading.Lock()
        self._empty_until: float | None = None  # epoch seconds: the quota is used up until then

    async def call(self, what: str, fn: Callable[..., Any], *args: Any, write: bool = False,
                   **kwargs: Any) -> Answer:
        """Run one pydo operation with our retry rules; `what` names it in errors ("reading the
        droplet"). A write is not sent again after an answer that may mean it was done."""
        policy = self._settings.retry
        if self._plain_http:
            kwargs["enforce_https"] = False  # azure-core's bearer policy refuses http otherwise
        for attempt in range(policy.max_retries + 1):
            await self._pace()
            try:
                answer = await asyncio.to_thread(self._run, fn, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - sorted out by _failure
                failure = self._failure(exc, what, attempt, write)
            else:
                if answer.status < 400:
                    return answer
                failure = self._envelope_failure(answer.status, answer.body, answer.headers,
                                                 what, attempt, write)
            error, wait = failure
            if wait is None or attempt == policy.max_retries:
                raise error
            log.info("DigitalOcean API answered %s while %s; retry %d of %d in %.2f s",
                     error.status or "nothing", what, attempt + 1, policy.max_retries, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def pages(self, what: str, key: str, fn: Callable[..., Any], *args: Any,
                    **kwargs: Any) -> list[dict[str, Any]]:
        """All items of a paginated list: follows `links.pages.next` page by page and stops at
        `meta.total` (shared/pages.yml, shared/meta.yml)."""
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = await self.call(what, fn, *args, page=page,
                                     per_page=self._settings.per_page, **kwargs)
            body = answer.body or {}
            chunk = body.get(key) or []
            items.extend(chunk)
            total = (body.get("meta") or {}).get("total")
            following = ((body.get("links") or {}).get("pages") or {}).get("next")
            if not chunk or not following or (total is not None and len(items) >= total):
                return items
            page += 1

    # -- internals -------------------------------------------------------------------------

    def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Answer:
        def keep(pipeline_response, body, headers):
            response = pipeline_response.http_response
            return Answer(response.status_code, body, dict(response.headers))
        try:
            answer = fn(*args, cls=keep, **kwargs)
        except Exception as exc:
            response = getattr(exc, "response", None)
            if response is not None:
                self._remember(dict(response.headers))
            raise
        self._remember(answer.headers)
        return answer

    def _remember(self, headers: dict[str, str]) -> None:
        remaining = _header(headers, "ratelimit-remaining")
        reset = _header(headers, "ratelimit-reset")
        with self._lock:
            if remaining is not None and remaining.strip() == "0" and _is_int(reset):
                self._empty_until = float(reset)
            elif remaining is not None:
                self._empty_until = None

    async def _pace(self) -> None:
        with self._lock:
            until = self._empty_until
        if until is None:
            return
        wait = min(until - time.time(), self._settings.retry.rate_limit_max_wait)
        if wait > 0:
            log.info("DigitalOcean API: no requests left this hour; pacing %.2f s", wait)
            await asyncio.sleep(wait)
        with self._lock:
            if self._empty_until == until:
                self._empty_until = None

    def _failure(self, exc: Exception, what: str, attempt: int,
                 write: bool) -> tuple[DigitalOceanError, float | None]:
        _, exceptions, _ = _pydo()
        if isinstance(exc, exceptions.HttpResponseError) and exc.response is not None:
            response = exc.response
            try:
                body = response.json()
            except Exception:  # noqa: BLE001 - a proxy's HTML page, an empty body
                body = None
            return self._envelope_failure(response.status_code, body, dict(response.headers),
                                          what, attempt, write)
        if isinstance(exc, (exceptions.ServiceRequestError, exceptions.ServiceResponseError)):
            backoff = None if write else self._backoff(attempt)
            if isinstance(exc, exceptions.ServiceResponseTimeoutError) or "timed out" in str(exc):
                return DigitalOceanError(
                    f"The DigitalOcean API did not answer within {self._settings.timeout:g} s "
                    f"while {what} (tried {attempt + 1} times).",
                    f"Check {STATUS_PAGE} and the server's network, then try again."), backoff
            return DigitalOceanError(
                f"Could not reach the DigitalOcean API while {what} ({type(exc).__name__}).",
                "Check the server's network and DNS, then try again."), backoff
        raise exc

    def _envelope_failure(self, status: int, body: Any, headers: dict[str, str], what: str,
                          attempt: int, write: bool) -> tuple[DigitalOceanError, float | None]:
        """The error envelope `{id, message, request_id}` (shared/models/error.yml) as an error,
        and how long to wait before trying again (None: do not)."""
        envelope = body if isinstance(body, dict) else {}
        code = str(envelope.get("id") or status)
        message = self._scrub(str(envelope.get("message") or "no message"))
        request_id = envelope.get("request_id") or _header(headers, "x-request-id")
        error = _explain(status, code, message, what, attempt)
        error = DigitalOceanError(error.happened, error.next_step, status=status, code=code,
                                  request_id=request_id)
        if status == 429:
            return error, self._rate_limit_wait(headers, attempt)
        if status >= 500 and not write:
            return error, self._backoff(attempt)
        return error, None

    def _rate_limit_wait(self, headers: dict[str, str], attempt: int) -> float:
        reset = _header(headers, "ratelimit-reset")
        policy = self._settings.retry
        if not _is_int(reset):
            return min(self._backoff(attempt), policy.rate_limit_max_wait)
        return min(max(float(reset) - time.time(), 0.05), policy.rate_limit_max_wait)

    def _backoff(self, attempt: int) -> float:
        policy = self._settings.retry
        return min(policy.backoff_cap, policy.backoff_base * 2 ** attempt)

    def _scrub(self, text: str) -> str:
        token = self._settings.token
        return text.replace(token, "***") if token else text


def _explain(status: int, code: str, message: str, what: str, retries: int) -> DigitalOceanError:
    """What failed and what to do, by status and the envelope's `id`."""
    message = message.rstrip(".")  # DigitalOcean's messages may end with one; ours add one
    if status == 401:
        return DigitalOceanError(f"DigitalOcean rejected the API token: {message}.", TOKEN_HELP)
    if status == 403:
        return DigitalOceanError(
            f"DigitalOcean refused {what}: {message} ({code}).",
            "The token lacks a scope this needs; give it the scopes listed in the README's "
            "cloud provider section, or create a new one.")
    if status == 429:
        return DigitalOceanError(
            f"DigitalOcean is still rate limiting after {retries} retries while {what} "
            f"({message}).", "Wait a few minutes and try again.")
    if status == 404:
        return DigitalOceanError(f"DigitalOcean could not find what was needed for {what}: "
                                 f"{message}.", "Check the names and ids in the bot's "
                                 "configuration.")
    if status == 422 or status == 409:
        return DigitalOceanError(f"DigitalOcean refused {what}: {message} ({code}).",
                                 "Look at the droplet in the control panel (another action "
                                 "may still be running), then try again.")
    if status >= 500:
        return DigitalOceanError(
            f"The DigitalOcean API failed while {what} ({status} {code}: {message}) after "
            f"{retries} retries.", f"Check {STATUS_PAGE} and try again later.")
    return DigitalOceanError(f"DigitalOcean refused {what}: {message} ({status} {code}).")


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _is_int(value: str | None) -> bool:
    return value is not None and value.strip().isdigit()
