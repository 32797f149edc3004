"""`spbot doctor` for the cloud server: the provider [cloud] names, its token readable and accepted,
and the server (droplet) found."""
from __future__ import annotations

from typing import TYPE_CHECKING

from spbot.providers.cloud_server import CloudError

from ...context import UserError
from ...feature import Check
from ..common import read_token
from .settings import chosen

if TYPE_CHECKING:
    from ...config import Config

SECTIONS = ("cloud", "hetzner", "digitalocean")


async def check_server(config: Config, setup: dict[str, str]) -> list[Check]:
    if not set(SECTIONS) & set(config.model_extra or {}):
        return []
    settings, problem = chosen(config.settings("cloud"), config.settings("hetzner"),
                               config.settings("digitalocean"))
    if problem:
        return [Check("fail", problem, 'add [cloud] with provider = "hetzner" or "digitalocean"')]
    if not settings.configured:
        return [Check("fail", f"[{settings.section}] has no API token", setup[settings.section])]
    try:
        token = read_token(settings.token, f"{settings.label} API token")
    except UserError as exc:
        return [Check("fail", exc.what, exc.todo)]
    from .feature import connect
    try:
        facts = await connect(settings, token).server_facts()
    except CloudError as exc:
        return [Check("fail", f"{settings.label}: {exc}")]      # the provider's message says what to do
    return [Check("ok", f"{settings.label} accepts the API token; server {facts.name} found "
                        f"({facts.server_type.name}, {facts.status}, {facts.location})")]
