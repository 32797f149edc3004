"""The client-server API as the trust code uses it: an HTTP client with the account's token, requests
whose failures become a `HomeserverError` naming what failed, `/keys/query`, and user-interactive auth
with the account's password. matrix-nio has no cross-signing API, but the endpoints are plain HTTP."""
from __future__ import annotations

import sys
from typing import Any, Callable, Iterable

from ..logs import register_secret
from .errors import AuthFailed, AuthRequired, HomeserverError
from .http import HttpFailed, MatrixHttp, Response

DEFAULT_TIMEOUT = 20.0        # s for an answer; connecting gets CONNECT_TIMEOUT
CONNECT_TIMEOUT = 5.0

KEYS_QUERY = "/_matrix/client/v3/keys/query"
SIGNING_UPLOAD = "/_matrix/client/v3/keys/device_signing/upload"
SIGNATURES_UPLOAD = "/_matrix/client/v3/keys/signatures/upload"
DEVICES = "/_matrix/client/v3/devices"


def matrix_http(homeserver: str, access_token: str | Callable[[], str],
                timeout: float = DEFAULT_TIMEOUT) -> MatrixHttp:
    """A client for the client-server API with the account's token (the caller closes it). A running
    bot passes a function that reads its connection's token, which a renewed session replaces."""
    if callable(access_token):
        return MatrixHttp(homeserver, lambda: {"Authorization": f"Bearer {access_token()}"},
                          connect=min(CONNECT_TIMEOUT, timeout), read=timeout)
    register_secret(access_token)
    return MatrixHttp(homeserver, {"Authorization": f"Bearer {access_token}"},
                      connect=min(CONNECT_TIMEOUT, timeout), read=timeout)


def _unanswered() -> tuple[type[BaseException], ...]:
    """What a client failing to get an answer raises: ours, or httpx's when a caller passed one."""
    httpx = sys.modules.get("httpx")
    return (HttpFailed,) if httpx is None else (HttpFailed, httpx.HTTPError)


async def request(http: Any, method: str, path: str, body: Any = None) -> Response:
    try:
        return await http.request(method, path, json=body)
    except _unanswered() as exc:
        cause = exc.cause_name if isinstance(exc, HttpFailed) else exc.__class__.__name__
        raise HomeserverError(f"the homeserver did not answer {method} {path.split('?')[0]} "
                              f"({cause}); check that it runs and is reachable") from None


def failure(response: Response, what: str) -> HomeserverError:
    try:
        data = response.json()
    except ValueError:
        data = {}
    errcode = data.get("errcode") if isinstance(data, dict) else None
    message = str(data.get("error", "")) if isinstance(data, dict) else ""
    return HomeserverError(f"{what} failed: HTTP {response.status_code} {errcode or ''} {message}".rstrip(),
                           response.status_code, errcode,
                           soft_logout=isinstance(data, dict) and data.get("soft_logout") is True)


def answer_json(response: Response, what: str) -> dict:
    if response.status_code != 200:
        raise failure(response, what)
    try:
        data = response.json()
    except ValueError:
        raise HomeserverError(f"{what}: the homeserver answered something that is not JSON") from None
    if not isinstance(data, dict):
        raise HomeserverError(f"{what}: unexpected answer from the homeserver")
    return data


async def query_keys(http: Any, user_ids: Iterable[str]) -> dict:
    """The raw `/keys/query` answer for all devices of these users."""
    users = list(dict.fromkeys(user_ids))
    response = await request(http, "POST", KEYS_QUERY, {"device_keys": {u: [] for u in users},
                                                        "timeout": 10_000})
    return answer_json(response, "querying keys")


async def with_uia(http: Any, user_id: str, method: str, path: str, body: dict,
                   password: str | None, what: str) -> Response:
    """Send; on a 401 that starts user-interactive auth, answer with m.login.password."""
    response = await request(http, method, path, body)
    if response.status_code != 401:
        return response
    try:
        flows_info = response.json()
    except ValueError:
        flows_info = {}
    if not isinstance(flows_info, dict) or "flows" not in flows_info:
        raise failure(response, what)
    stages = [tuple(f.get("stages") or ()) for f in flows_info.get("flows") or []
              if isinstance(f, dict)]
    if ("m.login.password",) not in stages:
        url = next((p.get("url") for p in (flows_info.get("params") or {}).values()
                    if isinstance(p, dict) and p.get("url")), None)
        offered = ", ".join("+".join(s) for s in stages) or "none"
        raise AuthRequired(f"{what} needs user-interactive auth the bot cannot do "
                           f"(offered: {offered})" + (f"; approve it at {url}" if url else ""), url)
    if not password:
        raise AuthRequired(f"{what} needs the account's password (user-interactive auth)")
    auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id},
            "password": password}
    if flows_info.get("session"):
        auth["session"] = flows_info["session"]
    response = await request(http, method, path, {**body, "auth": auth})
    if response.status_code == 401:
        if errcode_of(response) == "M_UNKNOWN_TOKEN":
            raise failure(response, what)
        raise AuthFailed(f"{what}: the homeserver refused the password")
    return response


def errcode_of(response: Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data.get("errcode") if isinstance(data, dict) else None
