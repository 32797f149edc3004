"""The family's Matrix homeserver through Synapse's admin API: accounts and invites.

Shapes checked against Synapse 1.163 (synapse/rest/admin/users.py, registration_tokens.py)
and element-hq/synapse docs/admin_api/user_admin_api.md, registration_tokens.md:

    GET    /_synapse/admin/v2/users/<user_id>           one account, 404 M_NOT_FOUND if none
    PUT    /_synapse/admin/v2/users/<user_id>           create (201), or MODIFY (200) if it exists
    GET    /_synapse/admin/v2/users?from=&limit=&deactivated=true&locked=true&guests=false
                                                        {"users": [...], "total", "next_token"?}
    POST   /_matrix/client/v3/register {}               401 with the UIA "flows" (one has the
                                                        stage m.login.registration_token when
                                                        invites work), 403 if registration is off

The account list leaves out locked accounts unless `locked=true` and, on a homeserver that
delegates authentication to MAS (MSC3861), answers 400 M_INVALID_PARAM "The guests parameter is
not supported when delegating to MAS." unless `guests=false` (synapse/rest/admin/users.py,
UsersRestServletV2.on_GET: `guests` defaults to true, `locked` to false). The bot always sends
`locked=true&guests=false`: every account a person can log in to, on every kind of homeserver
(guest accounts are throw-away sessions without a password, not family members).
    POST   /_synapse/admin/v1/reset_password/<user_id>  {"new_password", "logout_devices"}
    POST   /_synapse/admin/v1/deactivate/<user_id>      {"erase"}
    GET    /_synapse/admin/v1/whois/<user_id>           {"devices": {"": {"sessions": [...]}}}
    POST   /_synapse/admin/v1/registration_tokens/new   {"uses_allowed", "expiry_time" (ms)}
    GET    /_synapse/admin/v1/registration_tokens       {"registration_tokens": [...]}
    DELETE /_synapse/admin/v1/registration_tokens/<token>

Because PUT on an existing account silently changes it, `create_user` looks the account up
first and raises `UserExists` (Synapse's own case-insensitive check answers M_USER_IN_USE
for a differently-cased twin; that becomes `UserExists` too). The bot keeps two rules of its
own: it never deactivates or resets its own account, and never deactivates the last
homeserver admin other than itself (`Refused`).

    async with SynapseAdmin(url, token, "example.org") as synapse:
        user = await synapse.create_user("alice", generate_password(), displayname="Alice")
        invite = await synapse.create_registration_token(uses=1, expires=timedelta(days=7))

Every failure is a `SynapseAdminError` subclass whose message names the homeserver and says
what to do; the access token, passwords and invite tokens sent are never part of a message.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import quote

import httpx

from .errors import ProviderError
from .passwords import generate_password
from .usernames import UsernameError, validate_username

__all__ = [
    "AccessTokenRejected", "AdminApiUnavailable", "Connection", "Forbidden", "HomeserverFailed",
    "HomeserverUnreachable", "HomeserverUser", "InvalidRequest", "NewAccount", "NotServerAdmin",
    "RateLimited", "Refused", "RegistrationToken", "SynapseAdmin", "SynapseAdminError",
    "TokenNotFound", "UserDeactivated", "UserExists", "UserNotFound", "UsernameError", "Whois",
]

DEFAULT_TIMEOUT = 30.0
LIST_FLAGS = {"locked": "true", "guests": "false"}
PAGE_SIZE = 100
MAX_PAGES = 1000
TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~-]{1,64}")
ADMIN_HELP = ("Make the bot's account a homeserver admin — from another admin account with "
              "PUT /_synapse/admin/v2/users/{bot} {{\"admin\": true}}, or in Synapse's database "
              "with UPDATE users SET admin = 1 WHERE name = '{bot}' — then try again.")


# -- errors --------------------------------------------------------------------------------


class SynapseAdminError(ProviderError):
    """A homeserver admin call failed; the message names the homeserver and what to do."""

    def __init__(self, message: str, *, status: int | None = None, errcode: str | None = None):
        super().__init__(message)
        self.status = status
        self.errcode = errcode


class HomeserverUnreachable(SynapseAdminError):
    """No answer: connection refused, DNS, TLS or timeout."""


class AdminApiUnavailable(SynapseAdminError):
    """The URL answers, but not with Synapse's admin API (a proxy hides /_synapse/admin)."""


class AccessTokenRejected(SynapseAdminError):
    """401: the bot's access token is unknown, expired or logged out."""


class NotServerAdmin(SynapseAdminError):
    """403: the token is valid but its account is not a homeserver admin."""


class Forbidden(SynapseAdminError):
    """Any other 403 (e.g. account management delegated to MAS)."""


class InvalidRequest(SynapseAdminError):
    """400: the homeserver refused the values (invalid user name, bad expiry, …)."""


class UserExists(SynapseAdminError):
    """The account (or a differently-cased twin) already exists; nothing was changed."""

    def __init__(self, message: str, *, user_id: str, deactivated: bool | None = None,
                 status: int | None = None, errcode: str | None = None):
        super().__init__(message, status=status, errcode=errcode)
        self.user_id = user_id
        self.deactivated = deactivated


class UserNotFound(SynapseAdminError):
    """404: no such account on this homeserver."""


class UserDeactivated(SynapseAdminError):
    """The account is deactivated; the action makes no sense for it."""


class TokenNotFound(SynapseAdminError):
    """404: no such registration token."""


class Refused(SynapseAdminError):
    """The bot's own safety rules: not itself, not the last admin."""


class RateLimited(SynapseAdminError):
    """429: the homeserver asks to slow down."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class HomeserverFailed(SynapseAdminError):
    """5xx or an answer that is not what Synapse sends."""


# -- models --------------------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    """Synapse timestamps: ms in most places, seconds in older `creation_ts`."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    seconds = value / 1000 if value > 10**11 else value
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


@dataclass(frozen=True)
class HomeserverUser:
    """One account as the admin API lists it."""

    user_id: str
    displayname: str | None = None
    admin: bool = False
    deactivated: bool = False
    erased: bool = False
    locked: bool = False
    guest: bool = False
    user_type: str | None = None
    created: datetime | None = None
    last_seen: datetime | None = None  # None: never seen, or not yet flushed by Synapse

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> HomeserverUser:
        return cls(
            user_id=str(data["name"]),
            displayname=data.get("displayname"),
            admin=bool(data.get("admin")),
            deactivated=bool(data.get("deactivated")),
            erased=bool(data.get("erased")),
            locked=bool(data.get("locked")),
            guest=bool(data.get("is_guest")),
            user_type=data.get("user_type"),
            created=_time(data.get("creation_ts")),
            last_seen=_time(data.get("last_seen_ts")),
        )


@dataclass(frozen=True)
class RegistrationToken:
    """An invite: a token that lets someone register an account themselves."""

    token: str
    uses_allowed: int | None  # None: unlimited
    pending: int = 0          # registrations in progress with this token
    completed: int = 0
    expires: datetime | None = None

    @property
    def uses_left(self) -> int | None:
        if self.uses_allowed is None:
            return None
        return max(self.uses_allowed - self.pending - self.completed, 0)

    def is_valid(self, now: datetime | None = None) -> bool:
        """Synapse's rule: uses left and not expired."""
        now = now or datetime.now(timezone.utc)
        if self.expires is not None and self.expires <= now:
            return False
        return self.uses_left is None or self.uses_left > 0

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> RegistrationToken:
        return cls(token=str(data["token"]), uses_allowed=data.get("uses_allowed"),
                   pending=int(data.get("pending") or 0),
                   completed=int(data.get("completed") or 0),
                   expires=_time(data.get("expiry_time")))


@dataclass(frozen=True)
class NewAccount:
    """What `add_user` made: the account and its generated password (show it once, E2EE)."""

    user: HomeserverUser
    password: str = field(repr=False)


@dataclass(frozen=True)
class Connection:
    ip: str | None
    user_agent: str | None
    last_seen: datetime | None


@dataclass(frozen=True)
class Whois:
    """Where an account has been connecting from (admin API /whois)."""

    user_id: str
    connections: list[Connection] = field(default_factory=list)

    @property
    def last_seen(self) -> datetime | None:
        seen = [c.last_seen for c in self.connections if c.last_seen is not None]
        return max(seen) if seen else None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Whois:
        connections = []
        for device in (data.get("devices") or {}).values():
            for session in device.get("sessions") or []:
                for c in session.get("connections") or []:
                    connections.append(Connection(c.get("ip"), c.get("user_agent"),
                                                  _time(c.get("last_seen"))))
        connections.sort(key=lambda c: c.last_seen or datetime.min.replace(tzinfo=timezone.utc),
                         reverse=True)
        return cls(user_id=str(data.get("user_id")), connections=connections)


# -- the client ----------------------------------------------------------------------------


class SynapseAdmin:
    """Synapse's admin API for one homeserver, with an admin account's access token."""

    def __init__(self, homeserver_url: str, access_token: str, server_name: str,
                 timeout: float = DEFAULT_TIMEOUT, *,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.url = homeserver_url.rstrip("/")
        self.server_name = server_name
        self.timeout = timeout
        self._token = access_token
        self._me: str | None = None
        self._client = httpx.AsyncClient(
            base_url=self.url, timeout=httpx.Timeout(timeout), follow_redirects=False,
            headers={"Authorization": f"Bearer {access_token}"}, transport=transport)

    def __repr__(self) -> str:
        return f"SynapseAdmin({self.url!r}, server_name={self.server_name!r})"

    async def __aenter__(self) -> SynapseAdmin:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    @property
    def where(self) -> str:
        return f"the homeserver {self.server_name} ({self.url})"

    # -- names ------------------------------------------------------------------------------

    def user_id(self, name: str) -> str:
        """`alice` or `@alice:<server_name>` → `@alice:<server_name>`; other servers refused."""
        name = name.strip()
        if name.startswith("@"):
            localpart, sep, server = name[1:].partition(":")
            if not sep or server != self.server_name:
                raise InvalidRequest(f"{name} is not an account on {self.server_name}; the bot "
                                     "manages only its own homeserver's accounts.")
        else:
            localpart = name
        if not localpart or any(c in ":/" or c.isspace() for c in localpart):
            raise InvalidRequest(f"“{localpart}” is not a user name on {self.server_name}.")
        return f"@{localpart}:{self.server_name}"

    async def whoami(self) -> str:
        """The user ID the access token belongs to (the bot), cached."""
        if self._me is None:
            data = await self._request("GET", "/_matrix/client/v3/account/whoami",
                                       "checking the bot's own account")
            self._me = str(data["user_id"])
        return self._me

    async def server_version(self) -> str:
        data = await self._request("GET", "/_synapse/admin/v1/server_version",
                                   "asking for Synapse's version")
        return str(data.get("server_version", "?"))

    async def check_access(self) -> str:
        """Raise unless the token works and is a homeserver admin's; returns its user ID."""
        me = await self.whoami()
        await self._request("GET", "/_synapse/admin/v2/users", "listing accounts",
                            params={"limit": 1, **LIST_FLAGS})
        return me

    # -- accounts ---------------------------------------------------------------------------

    async def get_user(self, name: str) -> HomeserverUser | None:
        """The account, or None if the homeserver has none by that exact ID."""
        user_id = self.user_id(name)
        try:
            data = await self._request("GET", f"/_synapse/admin/v2/users/{_q(user_id)}",
                                       f"looking up {user_id}",
                                       not_found=lambda: UserNotFound(""))
        except UserNotFound:
            return None
        return HomeserverUser.from_api(data)

    async def user_exists(self, name: str) -> bool:
        return await self.get_user(name) is not None

    async def _existing(self, user_id: str) -> HomeserverUser:
        user = await self.get_user(user_id)
        if user is None:
            raise UserNotFound(f"There is no account {user_id} on {self.where}; "
                               "check the name with !user list.", status=404)
        return user

    async def create_user(self, localpart: str, password: str, admin: bool = False,
                          displayname: str | None = None) -> HomeserverUser:
        """A new account; `UserExists` (nothing changed) if the name is taken, even deactivated."""
        user_id = self.user_id(localpart)
        if not password:
            raise InvalidRequest("A new account needs a password; none was given.")
        existing = await self.get_user(user_id)
        if existing is not None:
            state = " (deactivated; its name cannot be used again)" if existing.deactivated else ""
            raise UserExists(f"{user_id} already exists on {self.where}{state}; nothing was "
                             "changed. Choose another name, or use !user reset to give it a "
                             "new password.", user_id=user_id, deactivated=existing.deactivated)
        body: dict[str, Any] = {"password": password, "admin": bool(admin)}
        if displayname:
            body["displayname"] = displayname
        data = await self._request("PUT", f"/_synapse/admin/v2/users/{_q(user_id)}",
                                   f"creating {user_id}", json=body, conceal=(password,),
                                   user_id=user_id)
        return HomeserverUser.from_api(data)

    async def add_user(self, name: str, admin: bool = False, displayname: str | None = None, *,
                       bot_localpart: str | None = None) -> NewAccount:
        """`!user add` in one call: validate the name (no request is made for a bad one),
        generate a strong password, create the account without touching an existing one.

        Raises `UsernameError` (a ValueError, chat-ready) for a bad or reserved name,
        `UserExists`, or any other `SynapseAdminError`.
        """
        localpart = validate_username(name, bot_localpart=bot_localpart or self._me)
        if self.user_id(localpart) == await self.whoami():
            raise UsernameError(f"“{localpart}” is the bot's own account; choose another name.")
        password = generate_password()
        user = await self.create_user(localpart, password, admin=admin, displayname=displayname)
        return NewAccount(user, password)

    async def reset_password(self, name: str, password: str | None = None,
                             logout_devices: bool = True) -> str:
        """A new password for an active account (generated if not given), returned; by
        default the account's devices are logged out."""
        user_id = self.user_id(name)
        if password is None:
            password = generate_password()
        if not password:
            raise InvalidRequest("A new password is needed; none was given.")
        if user_id == await self.whoami():
            raise Refused(f"{user_id} is the bot's own account; the bot will not reset its own "
                          "password (it would log itself out).")
        user = await self._existing(user_id)
        if user.deactivated:
            raise UserDeactivated(f"{user_id} is deactivated on {self.where}; a new password "
                                  "would not let anyone log in.")
        await self._request("POST", f"/_synapse/admin/v1/reset_password/{_q(user_id)}",
                            f"resetting the password of {user_id}",
                            json={"new_password": password, "logout_devices": logout_devices},
                            conceal=(password,), not_found=lambda: self._no_user(user_id))
        return password

    async def check_deactivate(self, name: str) -> HomeserverUser:
        """The account if the bot may deactivate it, else `Refused` / `UserNotFound`.

        Refused: the bot's own account; an active admin when no other active admin (besides
        the bot) would remain. Call it before asking for approval, `deactivate` calls it again.
        """
        user_id = self.user_id(name)
        me = await self.whoami()
        if user_id == me:
            raise Refused(f"{user_id} is the bot's own account; the bot will not deactivate "
                          "itself.")
        user = await self._existing(user_id)
        if user.admin and not user.deactivated:
            others = [u for u in await self.list_users(include_deactivated=False)
                      if u.admin and not u.deactivated and u.user_id not in (user_id, me)]
            if not others:
                raise Refused(f"{user_id} is the last homeserver admin besides the bot; make "
                              "another person an admin before deactivating this account.")
        return user

    async def deactivate(self, name: str, erase: bool = False) -> HomeserverUser:
        """Deactivate (and with `erase`, forget messages and profile of) an account.

        Irreversible for the account's name: it can never be registered again. Returns the
        account as it is afterwards.
        """
        user = await self.check_deactivate(name)
        await self._request("POST", f"/_synapse/admin/v1/deactivate/{_q(user.user_id)}",
                            f"deactivating {user.user_id}", json={"erase": bool(erase)},
                            not_found=lambda: self._no_user(user.user_id))
        return await self.get_user(user.user_id) or user

    async def list_users(self, include_deactivated: bool = True,
                         page_size: int = PAGE_SIZE) -> list[HomeserverUser]:
        """Every local account a person can log in to, locked ones included, ordered by user
        ID, all pages (guests are left out; see the module docstring)."""
        users: list[HomeserverUser] = []
        start: str | None = "0"
        for _ in range(MAX_PAGES):
            if start is None:
                break
            params: dict[str, Any] = {"from": start, "limit": page_size, **LIST_FLAGS}
            if include_deactivated:
                params["deactivated"] = "true"
            data = await self._request("GET", "/_synapse/admin/v2/users", "listing accounts",
                                       params=params)
            page = data.get("users") or []
            users += [HomeserverUser.from_api(u) for u in page]
            next_token = data.get("next_token")
            start = str(next_token) if next_token is not None and page else None
        return users

    async def whois(self, name: str) -> Whois:
        user_id = self.user_id(name)
        data = await self._request("GET", f"/_synapse/admin/v1/whois/{_q(user_id)}",
                                   f"looking up the sessions of {user_id}",
                                   not_found=lambda: self._no_user(user_id))
        return Whois.from_api(data)

    # -- registration tokens (invites) ------------------------------------------------------

    async def create_registration_token(self, uses: int | None = 1,
                                        expires: timedelta | datetime | None = None, *,
                                        token: str | None = None,
                                        length: int | None = None) -> RegistrationToken:
        """A new invite. `uses=None`: unlimited; `expires`: a duration from now or a moment;
        `token`: a chosen token (A–Z a–z 0–9 . _ ~ -, at most 64), else Synapse draws one of
        `length` characters (16 by default)."""
        if uses is not None and (not isinstance(uses, int) or isinstance(uses, bool) or uses < 1):
            raise InvalidRequest("An invite needs at least one use (or no limit).")
        body: dict[str, Any] = {"uses_allowed": uses}
        if expires is not None:
            moment = datetime.now(timezone.utc) + expires if isinstance(expires, timedelta) \
                else expires
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            if moment <= datetime.now(timezone.utc):
                raise InvalidRequest("An invite's expiry must be in the future.")
            body["expiry_time"] = int(moment.timestamp() * 1000)
        if token is not None:
            if not TOKEN_CHARS.fullmatch(token):
                raise InvalidRequest("An invite token may have 1–64 characters from "
                                     "A–Z, a–z, 0–9 and . _ ~ -.")
            body["token"] = token
        elif length is not None:
            if not 1 <= length <= 64:
                raise InvalidRequest("An invite token's length must be between 1 and 64.")
            body["length"] = length
        data = await self._request("POST", "/_synapse/admin/v1/registration_tokens/new",
                                   "creating an invite", json=body,
                                   conceal=(token,) if token else ())
        return RegistrationToken.from_api(data)

    async def list_registration_tokens(self, valid: bool | None = None) -> list[RegistrationToken]:
        """All invites; `valid=True` only usable ones, `False` only used-up or expired ones."""
        params = {} if valid is None else {"valid": "true" if valid else "false"}
        data = await self._request("GET", "/_synapse/admin/v1/registration_tokens",
                                   "listing invites", params=params)
        return [RegistrationToken.from_api(t) for t in data.get("registration_tokens") or []]

    async def delete_registration_token(self, token: str) -> None:
        """Revoke an invite; `TokenNotFound` if there is none such."""
        token = token.strip()
        if not TOKEN_CHARS.fullmatch(token):
            raise InvalidRequest("That does not look like an invite token (1–64 characters from "
                                 "A–Z, a–z, 0–9 and . _ ~ -); see !user invites.")
        await self._request(
            "DELETE", f"/_synapse/admin/v1/registration_tokens/{_q(token)}", "revoking an invite",
            conceal=(token,),
            not_found=lambda: TokenNotFound(f"There is no such invite on {self.where}; "
                                            "see !user invites.", status=404,
                                            errcode="M_NOT_FOUND"))

    async def registration_mode(self) -> str | None:
        """How people can sign up: "token" (with an invite), "open" (anyone, no invite needed),
        "closed", or None when the homeserver does not say (MAS-delegated or behind a proxy).

        An empty POST /register starts user-interactive auth and registers nobody: Synapse
        answers 403 "Registration has been disabled" when enable_registration is off, or 401
        with the flows, which offer `m.login.registration_token` only when
        registration_requires_token is on (synapse/rest/client/register.py)."""
        request = self._client.build_request("POST", "/_matrix/client/v3/register", json={})
        del request.headers["Authorization"]  # with a token Synapse takes it for an appservice
        try:
            response = await self._client.send(request)
        except httpx.HTTPError:
            return None
        body = _json(response) or {}
        if response.status_code == 403 and body.get("errcode") == "M_FORBIDDEN":
            return "closed"
        flows = body.get("flows")
        if response.status_code != 401 or not isinstance(flows, list):
            return None
        stages = [flow.get("stages") or [] for flow in flows if isinstance(flow, dict)]
        return "token" if stages and all("m.login.registration_token" in s for s in stages) \
            else "open"

    # -- plumbing ---------------------------------------------------------------------------

    def _no_user(self, user_id: str) -> UserNotFound:
        return UserNotFound(f"There is no account {user_id} on {self.where}; check the name "
                            "with !user list.", status=404, errcode="M_NOT_FOUND")

    async def _request(self, method: str, path: str, what: str, *,
                       json: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
                       conceal: tuple[str, ...] = (),
                       not_found: Callable[[], SynapseAdminError] | None = None,
                       user_id: str | None = None) -> dict[str, Any]:
        hidden = (self._token, *[s for s in conceal if s])
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
