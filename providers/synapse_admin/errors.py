"""What can go wrong with the homeserver's admin API: every failure is a `SynapseAdminError` (a
`ProviderError`) whose message names the homeserver and says what to do."""
from __future__ import annotations

from typing import Any

from ..errors import ProviderError

ADMIN_HELP = ("Make the bot's account a homeserver admin — from another admin account with "
              "PUT /_synapse/admin/v2/users/{bot} {{\"admin\": true}}, or in Synapse's database "
              "with UPDATE users SET admin = 1 WHERE name = '{bot}' — then try again.")


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
