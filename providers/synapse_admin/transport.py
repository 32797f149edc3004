"""One homeserver's admin API over HTTP: requests with the admin's token, and every failure turned into
the `SynapseAdminError` that says what to do, with the token and any secret sent scrubbed from it."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Self
from urllib.parse import quote

if TYPE_CHECKING:
    import httpx

from .errors import (
    ADMIN_HELP, AccessTokenRejected, AdminApiUnavailable, Forbidden, HomeserverFailed, HomeserverUnreachable,
    InvalidRequest, NotServerAdmin, RateLimited, SynapseAdminError, UserExists, UserNotFound,
)

DEFAULT_TIMEOUT = 30.0


class AdminTransport:
    """Synapse's admin API for one homeserver, with an admin account's access token."""

    def __init__(self, homeserver_url: str, access_token: str, server_name: str,
                 timeout: float = DEFAULT_TIMEOUT, *,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.url = homeserver_url.rstrip("/")
        self.server_name = server_name
        self.timeout = timeout
        self._token = access_token
        self._me: str | None = None
        import httpx                 # loaded with the first client, not with the command modules
        self._client = httpx.AsyncClient(
            base_url=self.url, timeout=httpx.Timeout(timeout), follow_redirects=False,
            headers={"Authorization": f"Bearer {access_token}"}, transport=transport)

    def __repr__(self) -> str:
        return f"SynapseAdmin({self.url!r}, server_name={self.server_name!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    @property
    def where(self) -> str:
        return f"the homeserver {self.server_name} ({self.url})"

    def _no_user(self, user_id: str) -> UserNotFound:
        return UserNotFound(f"There is no account {user_id} on {self.where}; check the name "
                            "with !user list.", status=404, errcode="M_NOT_FOUND")

    async def _request(self, method: str, path: str, what: str, *,
                       json: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
                       conceal: tuple[str, ...] = (),
                       not_found: Callable[[], SynapseAdminError] | None = None,
                       user_id: str | None = None) -> dict[str, Any]:
        hidden = (self._token, *[s for s in conceal if s])
        import httpx                 # loaded with the first client, not with the command modules
        try:
            response = await self._client.request(method, path, json=json, params=params)
        except httpx.TimeoutException:
            raise HomeserverUnreachable(
                f"{_cap(self.where)} did not answer within {self.timeout:g} s while {what}. "
                "Synapse may be restarting or overloaded; try again in a minute.") from None
        except httpx.HTTPError as error:
            reason = _scrub(f"{type(error).__name__}: {error}", hidden)
            raise HomeserverUnreachable(
                f"Could not reach {self.where} while {what} ({reason}). Check that Synapse is "
                "running and that the bot's homeserver address is right.") from None
        body = _json(response)
        if response.is_success:
            if body is None:
                raise HomeserverFailed(
                    f"{_cap(self.where)} answered {what} with something that is not Synapse's "
                    "JSON; check that the bot's homeserver address points at Synapse.",
                    status=response.status_code)
            return body
        raise self._explain(response, body, what, hidden, not_found, user_id)

    def _explain(self, response: httpx.Response, body: dict[str, Any] | None, what: str,
                 hidden: tuple[str, ...], not_found: Callable[[], SynapseAdminError] | None,
                 user_id: str | None) -> SynapseAdminError:
        status = response.status_code
        errcode = body.get("errcode") if body else None
        said = _scrub(str(body.get("error") or "") if body else "", hidden)[:300]
        said_part = f" (“{said}”)" if said else ""
        kw = {"status": status, "errcode": errcode}
        if errcode == "M_USER_IN_USE" or (status == 409 and user_id):
            uid = user_id or "the account"
            return UserExists(f"{uid} already exists on {self.where}{said_part}; nothing was "
                              "changed. Choose another name.", user_id=uid, **kw)
        if status == 401:
            return AccessTokenRejected(
                f"{_cap(self.where)} does not accept the bot's access token ({errcode or 401}) "
                f"while {what}. The bot's login expired or was logged out; restart the bot so "
                "it logs in again, or replace the token in its configuration.", **kw)
        if status == 403:
            if "admin" in said.lower():
                bot = self._me or "@<bot>:" + self.server_name
                return NotServerAdmin(
                    f"{_cap(self.where)} refused {what}: the bot's account is not a homeserver "
                    "admin. " + ADMIN_HELP.format(bot=bot), **kw)
            return Forbidden(f"{_cap(self.where)} refused {what}{said_part}.", **kw)
        if status == 404:
            if body is None or errcode == "M_UNRECOGNIZED":
                return AdminApiUnavailable(
                    f"{self.url} does not offer Synapse's admin API (HTTP 404 while {what}). "
                    "Point the bot at Synapse's own listener (e.g. http://127.0.0.1:8008) or let "
                    "the reverse proxy pass /_synapse/admin from the bot's address.", **kw)
            if not_found is not None:
                error = not_found()
                error.status, error.errcode = status, errcode
                return error
            return SynapseAdminError(f"{_cap(self.where)} found nothing while {what}"
                                     f"{said_part}.", **kw)
        if status == 405 and body is None:
            return AdminApiUnavailable(
                f"{self.url} does not offer Synapse's admin API (HTTP 405 while {what}). Point "
                "the bot at Synapse's own listener.", **kw)
        if status == 400:
            return InvalidRequest(f"{_cap(self.where)} refused {what}{said_part}.", **kw)
        if status == 429:
            retry = _retry_after(response, body)
            when = f"in {retry:.0f} s" if retry else "in a minute"
            return RateLimited(f"{_cap(self.where)} is rate-limiting the bot while {what}; try "
                               f"again {when}.", retry_after=retry, **kw)
        if status >= 500:
            return HomeserverFailed(
                f"{_cap(self.where)} failed while {what} (HTTP {status}"
                f"{', ' + said if said else ''}). Check Synapse's log "
                "(journalctl -u matrix-synapse) and try again.", **kw)
        return SynapseAdminError(f"{_cap(self.where)} answered HTTP {status} while {what}"
                                 f"{said_part}.", **kw)


def _q(value: str) -> str:
    return quote(value, safe="")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _scrub(text: str, hidden: tuple[str, ...]) -> str:
    for secret in hidden:
        if secret:
            text = text.replace(secret, "[hidden]")
            text = text.replace(_q(secret), "[hidden]")
    return text


def _retry_after(response: httpx.Response, body: dict[str, Any] | None) -> float | None:
    if body and isinstance(body.get("retry_after_ms"), (int, float)):
        return body["retry_after_ms"] / 1000
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
