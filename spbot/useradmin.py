"""Glue between `!user` and the homeserver: the [users] settings, an admin API client for the bot,
chat-ready errors, and the private message that carries a new password.

    [users]
    admin_api_url = "http://127.0.0.1:8008"        # default: the bot's homeserver URL
    admin_token = { file = "/run/keys/synapse-admin" }   # default: the bot's own access token
    public_url = "https://matrix.example.org"      # what people type into Element; default: homeserver

A password leaves the bot only inside the encrypted direct room with the admin who asked: it is
registered as a log secret (any log line holding it shows *** instead), and once the message is
sent its copy in the outbox table is overwritten, so it does not rest in the state database.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Iterator
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spbot.providers.synapse_admin import SynapseAdmin, SynapseAdminError
from spbot.config import ConfigError, Duration, Secret, config_section
from spbot.context import UserError
from spbot.logs import get_logger, register_secret
from spbot.render import Reply, human_duration
from spbot.providers.usernames import UsernameError, validate_username

if TYPE_CHECKING:
    from spbot.bot import Bot

log = get_logger(__name__)

ELEMENT = "https://element.io/download"

@config_section("users")
class UsersSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    admin_api_url: str | None = None
    admin_token: Secret | None = None
    public_url: str | None = None
    timeout: Duration = 30.0
    invite_uses: int = Field(1, ge=1)
    invite_expires: Duration = 7 * 86400.0      # 0: invites do not expire
    reserved: list[str] = Field(default_factory=list)

    @field_validator("admin_api_url", "public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("expected a URL such as https://matrix.example.org")
        return value.rstrip("/") if value else value


def settings(bot: Bot) -> UsersSettings:
    return bot.config.settings("users")


def server_name(bot: Bot) -> str:
    return bot.config.user_id.split(":", 1)[1]


def public_url(bot: Bot) -> str:
    return settings(bot).public_url or bot.config.homeserver


def admin_api(bot: Bot) -> SynapseAdmin:
    """A client for the homeserver's admin API; use it as `async with admin_api(bot) as synapse`."""
    chosen = settings(bot)
    try:
        token = chosen.admin_token.read() if chosen.admin_token else bot.connection.client.access_token
    except ConfigError as exc:
        raise UserError(f"The admin token for [users] cannot be read: {exc}",
                        "Fix admin_token in the bot's configuration and restart the bot.") from exc
    register_secret(token)
    return SynapseAdmin(chosen.admin_api_url or bot.config.homeserver, token, server_name(bot),
                        timeout=chosen.timeout)


@contextmanager
def explained() -> Iterator[None]:
    """The admin API's and the name rules' failures are expected: reply with them as they are."""
    try:
        yield
    except UsernameError as exc:
        raise UserError(str(exc), "Names: 2–31 characters, lowercase a–z, 0–9 and _, starting "
                                  "with a letter.") from exc
    except SynapseAdminError as exc:
        raise UserError(str(exc)) from exc


def check_name(bot: Bot, name: str) -> str:
    """The localpart for a new account, refused before any request is made to the homeserver."""
    with explained():
        return validate_username(name, bot_localpart=bot.config.user_id,
                                 extra_reserved=settings(bot).reserved)


def refuse_the_bot(bot: Bot, user_id: str, doing: str) -> None:
    """The provider protects the account whose token it uses; with [users] admin_token that may be
    another account, so the bot's own is protected here too."""
    if user_id == bot.config.user_id:
        raise UserError(f"{user_id} is my own account; I will not {doing} it.")


def when(moment: datetime | None, bot: Bot, never: str = "never") -> str:
    if moment is None:
        return never
    return f"{moment.astimezone(ZoneInfo(bot.config.timezone)):%Y-%m-%d %H:%M}"


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    return f"{human_duration(max((now - moment).total_seconds(), 0))} ago"


# -- the private password message -----------------------------------------------------------


def password_message(bot: Bot, user_id: str, password: str, *, new_account: bool,
                     displayname: str | None = None) -> Reply:
    url = public_url(bot)
    localpart = user_id[1:].split(":", 1)[0]
    head = f"🔑 New account {user_id}" if new_account else f"🔑 New password for {user_id}"
    if displayname:
        head += f" ({displayname})"
    facts = [("User name", localpart), ("Password", password), ("Homeserver", url)]
    steps = [
        "Give these to the person privately (in person or by phone), not in a group chat.",
        f"In Element ({ELEMENT}): Sign in → Edit the homeserver → {url}, then the user name "
        "and password above." if new_account else
        "All their sessions were signed out: they sign in again with this password.",
        "After signing in: set up Secure Backup when Element offers it, and change the password "
        "(Settings → Account).",
        "Then delete this message.",
    ]
    body = "\n".join([head] + [f"{k}: {v}" for k, v in facts] + ["", "Next:"]
                     + [f"{n}. {s}" for n, s in enumerate(steps, 1)])
    html = (f"<b>{escape(head)}</b><br>"
            + "<br>".join(f"{escape(k)}: <code>{escape(v)}</code>" for k, v in facts)
            + "<br><br>Next:<ol>" + "".join(f"<li>{escape(s)}</li>" for s in steps) + "</ol>")
    return Reply(body, html)


async def send_password(bot: Bot, requester: str, message: Reply, password: str) -> str | None:
    """DM the password to the requester; None when queued, else what went wrong (chat-ready).
    The outbox forgets the text once it is sent, so the password does not rest in the state database."""
    register_secret(password)
    try:
        await bot.direct_message(requester, message, secret=True)
    except UserError as exc:
        return exc.what
    return None


def delivery_note(requester: str, failure: str | None, name: str) -> str:
    if failure is None:
        return (f"I sent the password to {requester} in a private encrypted room "
                "(“spbot (private)”; accept my invitation if you have not yet).")
    return (f"⚠️ But I could not send the password privately: {failure} "
            f"Use !user reset {name} to make a new one.")
