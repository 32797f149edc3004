"""[users]: how the bot reaches the homeserver's admin API, what people type into Element, and the
defaults of invites.

    [users]
    admin_api_url = "http://127.0.0.1:8008"        # default: the bot's homeserver URL
    admin_token = { file = "/run/keys/synapse-admin" }   # default: the bot's own access token
    public_url = "https://matrix.example.org"      # what people type into Element; default: homeserver
"""
from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spbot.config import Duration, Secret, config_section


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
