"""A soft logout: the homeserver let the bot's access token expire but keeps its device (Synapse's
`session_lifetime`, or a token lifetime for clients without refresh tokens). The answer is M_UNKNOWN_TOKEN
with `soft_logout: true`, and the client is to log in again as the same device.

Logging in with the password and the stored device id gives a new token for the device the bot already
has: its keys, its room keys and its cross-signature stay, nothing changes for the admins, and the bot
goes on without a restart. Without a password (an access token configured) it cannot: the bot stops as
signed out, as before."""
from __future__ import annotations

from .logs import register_secret
from .trust.errors import HomeserverError
from .trust.homeserver import CONNECT_TIMEOUT, DEFAULT_TIMEOUT, request
from .trust.http import MatrixHttp

LOGIN = "/_matrix/client/v3/login"


class RenewalRefused(Exception):
    """The homeserver did not give the device a new token; the message says why (no secret in it)."""


async def login_same_device(homeserver: str, user_id: str, password: str, device_id: str,
                            device_name: str) -> str:
    """A new access token for the bot's existing device (registered as a secret before it is returned).
    RenewalRefused when the homeserver says no; HomeserverError when it does not answer, is busy (429) or
    failing (5xx): that may pass."""
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id},
            "password": password, "device_id": device_id, "initial_device_display_name": device_name}
    async with MatrixHttp(homeserver, {}, connect=CONNECT_TIMEOUT, read=DEFAULT_TIMEOUT) as http:
        response = await request(http, "POST", LOGIN, body)
    try:
        data = response.json()
    except ValueError:
        data = {}
    if response.status_code == 429 or response.status_code >= 500:     # busy or failing: try again later
        raise HomeserverError(f"the homeserver could not log me in just now (HTTP {response.status_code})")
    if response.status_code != 200 or not isinstance(data, dict):
        errcode = data.get("errcode", "") if isinstance(data, dict) else ""
        raise RenewalRefused(f"the homeserver refused the password login (HTTP {response.status_code} "
                             f"{errcode})".replace(" )", ")"))
    token, answered_device = data.get("access_token"), data.get("device_id")
    if not isinstance(token, str) or not token:
        raise RenewalRefused("the homeserver's login answer has no access token")
    register_secret(token)
    if answered_device != device_id:
        raise RenewalRefused(f"the homeserver logged me in as device {answered_device}, not {device_id}")
    return token
