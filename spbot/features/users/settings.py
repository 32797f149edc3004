"""[users]: how the bot reaches the homeserver's admin API, what people type into Element, and the
defaults of invites.

    [users]
    admin_api_url = "http://127.0.0.1:8008"        # default: the bot's homeserver URL
    admin_token = { file = "/run/keys/synapse-admin" }   # default: the bot's own access token
    public_url = "https://matrix.example.org"      # what people type into Element; default: homeserver
"""
from __future__ import annotations

import re

from pydantic import ConfigDict, Field, field_validator

from spbot.config import Duration, Secret, config_section
from spbot.model import Model


@config_section("users")
class UsersSettings(Model):
    """[users]: how the bot reaches the homeserver's (Synapse) admin API for !user and !invite, what
    people type into Element, and the defaults of invites."""
    model_config = ConfigDict(extra="forbid")
    admin_api_url: str | None = Field(
        None, examples=["http://127.0.0.1:8008"],
        description="Where the Synapse admin API answers, e.g. its local listener (unset: the bot's "
                    "homeserver URL).")
    admin_token: Secret | None = Field(
        None, examples=[{"file": "/etc/spbot/synapse-admin-token"}],
        description="An access token of a Synapse server admin (unset: the bot's own, so the bot's "
                    "account must then be a server admin).")
    public_url: str | None = Field(
        None, examples=["https://matrix.example.org"],
        description="The homeserver address people type into Element, shown with new accounts and "
                    "invites (unset: the bot's homeserver URL).")
    timeout: Duration = Field(30.0, description="How long one admin API request may take.")
    invite_uses: int = Field(1, ge=1, description="How many accounts one invite (registration token) "
                                                  "can create.")
    invite_expires: Duration = Field(7 * 86400.0, description="How long an invite stays valid; 0: it does "
                                                              "not expire.")
    reserved: list[str] = Field(
        default_factory=list, examples=[["admin", "root"]],
        description="More names no new account may take (the bot's own and a few others always are).")

    @field_validator("admin_api_url", "public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("expected a URL such as https://matrix.example.org")
        return value.rstrip("/") if value else value
