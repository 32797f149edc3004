"""The users feature: accounts on the family's homeserver through its admin API, for `!user`.

A password leaves the bot only inside the encrypted direct room with the admin who asked: it is
registered as a log secret (any log line holding it shows *** instead), and once the message is
sent its copy in the outbox table is overwritten, so it does not rest in the state database.
"""
from __future__ import annotations

from datetime import datetime

from spbot.config import ConfigError
from spbot.context import UserError
from spbot.feature import Check, Feature
from spbot.logs import register_secret
from spbot.providers.synapse_admin import SynapseAdmin
from spbot.providers.usernames import validate_username
from spbot.render import Reply

from . import messages
from .settings import UsersSettings


class UsersFeature(Feature):
    name = "users"
    settings_model = UsersSettings
    settings: UsersSettings

    @classmethod
    async def doctor(cls, config) -> list[Check]:
        if cls.name not in (config.model_extra or {}):
            return []
        from .doctor import check_users
        return await check_users(config, config.settings(cls.name))

    def server_name(self) -> str:
        return self.host.config.user_id.split(":", 1)[1]

    def public_url(self) -> str:
        return self.settings.public_url or self.host.config.homeserver

    def admin_api(self) -> SynapseAdmin:
        """A client for the homeserver's admin API; use it as `async with users.admin_api() as synapse`."""
        chosen = self.settings
        try:
            token = chosen.admin_token.read() if chosen.admin_token else self._bot_token()
        except ConfigError as exc:
            raise UserError(f"The admin token for [users] cannot be read: {exc}",
                            "Fix admin_token in the bot's configuration and restart the bot.") from exc
        register_secret(token)
        return SynapseAdmin(chosen.admin_api_url or self.host.config.homeserver, token, self.server_name(),
                            timeout=chosen.timeout)

    def _bot_token(self) -> str:
        # The bot's own access token: the Host protocol (spbot/feature.py) does not offer it yet.
        return self.host.connection.client.access_token

    def check_name(self, name: str) -> str:
        """The localpart for a new account, refused before any request is made to the homeserver."""
        return validate_username(name, bot_localpart=self.host.config.user_id,
                                 extra_reserved=self.settings.reserved)

    def refuse_the_bot(self, user_id: str, doing: str) -> None:
        """The provider protects the account whose token it uses; with [users] admin_token that may be
        another account, so the bot's own is protected here too."""
        if user_id == self.host.config.user_id:
            raise UserError(f"{user_id} is my own account; I will not {doing} it.")

    def when(self, moment: datetime | None, never: str = "never") -> str:
        return messages.when(moment, self.host.config.timezone, never)

    def password_message(self, user_id: str, password: str, *, new_account: bool,
                         displayname: str | None = None) -> Reply:
        return messages.password_message(self.public_url(), user_id, password, new_account=new_account,
                                         displayname=displayname)

    async def send_password(self, requester: str, message: Reply, password: str) -> str | None:
        """DM the password to the requester; None when queued, else what went wrong (chat-ready).
        The outbox forgets the text once it is sent, so the password does not rest in the state database."""
        register_secret(password)
        try:
            await self.host.direct_message(requester, message, secret=True)
        except UserError as exc:
            return exc.what
        return None
