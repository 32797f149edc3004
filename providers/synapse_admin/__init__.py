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

from ..usernames import UsernameError
from .client import SynapseAdmin
from .errors import (
    AccessTokenRejected, AdminApiUnavailable, Forbidden, HomeserverFailed, HomeserverUnreachable, InvalidRequest,
    NotServerAdmin, RateLimited, Refused, SynapseAdminError, TokenNotFound, UserDeactivated, UserExists,
    UserNotFound,
)
from .models import Connection, HomeserverUser, NewAccount, RegistrationToken, Whois

__all__ = [
    "AccessTokenRejected", "AdminApiUnavailable", "Connection", "Forbidden", "HomeserverFailed",
    "HomeserverUnreachable", "HomeserverUser", "InvalidRequest", "NewAccount", "NotServerAdmin",
    "RateLimited", "Refused", "RegistrationToken", "SynapseAdmin", "SynapseAdminError",
    "TokenNotFound", "UserDeactivated", "UserExists", "UserNotFound", "UsernameError", "Whois",
]
