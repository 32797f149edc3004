"""`spbot doctor` for [users]: the admin API answers the token (the bot's own, or [users] admin_token)
as a homeserver admin's, and invites can make accounts (registration by token is on)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from spbot.config import ConfigError
from spbot.feature import Check
from spbot.providers.synapse_admin import NotServerAdmin, SynapseAdmin, SynapseAdminError
from spbot.statedir import stored_access_token

if TYPE_CHECKING:
    from spbot.config import Config

    from .settings import UsersSettings

YAML = "homeserver.yaml (then restart Synapse)"
REGISTRATION = {
    "token": ("ok", "registration needs an invite token: !user invite works", ""),
    "closed": ("warn", "registration is off on the homeserver: invites (!user invite) cannot make accounts",
               f"set enable_registration: true and registration_requires_token: true in {YAML}"),
    "open": ("warn", "anyone can register on the homeserver, without an invite",
             f"set registration_requires_token: true in {YAML}"),
    None: ("warn", "the homeserver does not say how people register (behind a proxy, or delegated): "
                   "!user invite may not work", "try !user invite once and open the link"),
}


async def check_users(config: Config, settings: UsersSettings) -> list[Check]:
    url = settings.admin_api_url or config.homeserver
    whose = "[users] admin_token" if settings.admin_token else "the bot's own token"
    try:
        token = settings.admin_token.read() if settings.admin_token else stored_access_token(config.state_dir)
    except ConfigError as exc:
        return [Check("fail", f"[users] admin_token: {exc.problems[0]}", "fix admin_token in the config")]
    if token is None:
        return [Check("warn", "the admin API cannot be checked before the bot's first login",
                      "start the bot once (spbot run), then run spbot doctor again")]
    async with SynapseAdmin(url, token, config.user_id.split(":", 1)[1], timeout=settings.timeout) as synapse:
        try:
            me = await synapse.check_access()
            checks = [Check("ok", f"admin API at {url}: {me} is a homeserver admin ({whose})")]
        except NotServerAdmin:
            checks = [Check("fail", f"admin API at {url}: the account of {whose} is not a homeserver admin",
                            _make_admin(config, settings))]
        except SynapseAdminError as exc:
            checks = [Check("fail", f"admin API at {url}: {exc}", "check [users] admin_api_url and admin_token")]
        state, text, todo = REGISTRATION[await synapse.registration_mode()]
    return checks + [Check(state, text, todo)]


def _make_admin(config: Config, settings: UsersSettings) -> str:
    if settings.admin_token:
        return "set [users] admin_token to the token of a homeserver admin"
    return (f"make {config.user_id} a homeserver admin (in Synapse's database: UPDATE users SET admin = 1 "
            f"WHERE name = '{config.user_id}'), or set [users] admin_token to a homeserver admin's token")
