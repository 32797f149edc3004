"""A soft logout: the homeserver let the bot's access token expire but keeps its device (Synapse's
`session_lifetime`, or a token lifetime for clients without refresh tokens). The answer is M_UNKNOWN_TOKEN
with `soft_logout: true`, and the client is to log in again as the same device.

Logging in with the password and the stored device id gives a new token for the device the bot already
has: its keys, its room keys and its cross-signature stay, nothing changes for the admins, and the bot
goes on without a restart. Without a password (an access token configured) it cannot: the bot stops as
signed out, as before."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .logs import get_logger, register_secret
from .key_files import device_of, key_files
from .trust.errors import HomeserverError
from .trust.homeserver import CONNECT_TIMEOUT, DEFAULT_TIMEOUT, request
from .trust.http import MatrixHttp

LOGIN = "/_matrix/client/v3/login"
log = get_logger(__name__)


class RenewalRefused(Exception):
    """The homeserver did not give the device a new token; the message says why (no secret in it)."""


async def login_same_device(config: Any, device_id: str) -> str:
    """A new access token for the bot's existing device, with the password of its config (registered as a
    secret before it is returned). RenewalRefused when the homeserver says no; HomeserverError when it
    does not answer, is busy (429) or failing (5xx): that may pass."""
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": config.user_id},
            "password": config.password.read(), "device_id": device_id,
            "initial_device_display_name": config.device_name}
    async with MatrixHttp(config.homeserver, {}, connect=CONNECT_TIMEOUT, read=DEFAULT_TIMEOUT) as http:
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


async def recover_stored_device(config: Any, state_dir: Path) -> tuple[str, str] | None:
    """credentials.json gone or unreadable, while the crypto store holds one device of this account: log in
    with the password as that device again (its keys, room keys and cross-signature are kept) rather than
    as a new one. (device id, new token), or None when there is nothing to recover (a first start), no
    password, more than one device's store, or the homeserver refuses."""
    stores = key_files(state_dir, config.user_id)
    if config.password is None or len(stores) != 1:
        return None
    device_id = device_of(stores[0], config.user_id)
    try:
        token = await login_same_device(config, device_id)
    except (RenewalRefused, HomeserverError) as exc:
        log.warning("credentials_not_recovered", device_id=device_id, why=str(exc))
        return None
    log.warning("credentials_recovered", device_id=device_id,
                detail="credentials.json was missing or unreadable; logged in again as the same device")
    return device_id, token


def cannot_replace(state_dir: Path, device_id: str, why: str, damaged: Path | None = None) -> str:
    """Why the bot cannot go on with only an access token (no password to log in with), and what to do."""
    fix = ("log the bot's account in again for a new access token, put it in the access_token file, "
           f"delete {state_dir / 'credentials.json'} and start me again")
    if why == "signed out":
        return (f"my session (device {device_id}) was signed out on the homeserver: its access token is "
                f"no longer valid. With only an access token I cannot log in again: {fix}. Or configure "
                "a password file.")
    state = {"keys damaged": f"is damaged (set aside as {damaged})",
             "keys behind": f"was older than my device's own messages (put back from a snapshot or a backup; "
                            f"set aside as {damaged})"}.get(
        why, f"has no keys for my device {device_id}, whose keys the homeserver knows (restored from an old "
             "backup, or a wiped crypto folder?)")
    return (f"my crypto store ({state_dir / 'crypto'}) {state}. With only an access token I cannot start a "
            f"new device: {fix}, and delete device {device_id} (Element: Settings → Sessions). Or configure a "
            "password file.")
