"""A small HTTP client for the client-server API on aiohttp, which nio has loaded already: the trust code
runs at every login, and httpx would add ~6 MiB of memory and ~0.1 s of imports for a few requests.
It speaks the part of httpx's shape the trust code uses (`request(method, path, json=)` answering
`.status_code` and `.json()`, `aclose`, `async with`, `event_hooks["request"]`)."""
from __future__ import annotations

import asyncio
import json as jsonlib
from dataclasses import dataclass
from typing import Any, Callable

import aiohttp
from yarl import URL


class HttpFailed(Exception):
    """No answer from the server (connection refused, timeout, broken transfer); named after its cause."""

    def __init__(self, cause: BaseException):
        super().__init__(cause.__class__.__name__)
        self.cause_name = cause.__class__.__name__


@dataclass(frozen=True)
class Response:
    status_code: int
    text: str

    def json(self) -> Any:
        return jsonlib.loads(self.text)        # ValueError when it is not JSON, as httpx


@dataclass(frozen=True)
class SentRequest:
    method: str
    url: URL


class MatrixHttp:
    """One session per client, opened on the first request (inside the running loop)."""

    def __init__(self, base_url: str, headers: dict[str, str] | Callable[[], dict[str, str]], connect: float,
                 read: float):
        self.base_url = base_url.rstrip("/")
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)
        self._session: aiohttp.ClientSession | None = None
        self.event_hooks: dict[str, list] = {"request": []}

    async def request(self, method: str, path: str, json: Any = None) -> Response:
        url = URL(self.base_url + path)
        for hook in self.event_hooks["request"]:
            await hook(SentRequest(method, url))
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = self._headers() if callable(self._headers) else self._headers
        try:
            async with self._session.request(method, url, json=json, headers=headers) as answer:
                return Response(answer.status, await answer.text(errors="replace"))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise HttpFailed(exc) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> "MatrixHttp":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
