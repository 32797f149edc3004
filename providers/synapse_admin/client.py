"""The accounts and invites of the family's homeserver, through its admin API (see the package's
docstring for the endpoints and the bot's own rules)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from ..passwords import generate_password
from ..usernames import UsernameError, validate_username
from .errors import InvalidRequest, Refused, TokenNotFound, UserDeactivated, UserExists, UserNotFound
from .models import HomeserverUser, NewAccount, RegistrationToken, Whois
from .transport import AdminTransport, _json, _q

LIST_FLAGS = {"locked": "true", "guests": "false"}
PAGE_SIZE = 100
MAX_PAGES = 1000
TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~-]{1,64}")


class SynapseAdmin(AdminTransport):
    """Synapse's admin API for one homeserver, with an admin account's access token."""

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
        import httpx                 # loaded with the first client, not with the command modules
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
