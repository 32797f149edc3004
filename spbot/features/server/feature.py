"""The cloud server feature: the server and volumes of the provider [cloud] names (Hetzner in
[hetzner], DigitalOcean in [digitalocean]) for the commands (!server, !volume), what a restart finishes
and reports (a reboot, a volume growth, a resize), and the grow offer for the disk alerts."""
from __future__ import annotations

import asyncio

import socket
from ipaddress import ip_address, ip_network
from typing import Any

import psutil

from spbot.providers.cloud_server import ServerFacts

from ...context import UserError
from ...feature import Check, Feature
from ...logs import get_logger
from ..common import read_token
from . import marks
from .offer import GrowOffer, grow_offer_for
from .growth import finish_growth_after_restart
from .provider import ServerProvider
from .reboot import report_reboot_after_restart
from .resizing import CANCELLED, finish_resize
from .settings import DigitalOceanConfig, HetznerConfig, ServerConfig, chosen

log = get_logger(__name__)


SETUP = {
    "hetzner": ('Add [hetzner] with token = {file = "/path/to/token"} and '
                'server = "<server name>" to the config, then restart the bot.'),
    "digitalocean": ('Add [digitalocean] with token = {file = "/path/to/token"} (and droplet = '
                     '"<droplet name>" unless the bot runs on it) to the config, then restart '
                     'the bot.'),
}


class ServerFeature(Feature):
    name = "hetzner"
    title = "cloud server"
    settings_model = HetznerConfig
    settings: ServerConfig  # of the provider [cloud] names: HetznerConfig or DigitalOceanConfig

    def __init__(self, host, settings, problem: str | None = None):
        super().__init__(host, settings)
        self._problem = problem  # why the settings cannot be used
        self._connected: tuple[str, ServerProvider] | None = None

    @classmethod
    def create(cls, host, config) -> ServerFeature:
        settings, problem = chosen(config.settings("cloud"), config.settings("hetzner"),
                                   config.settings("digitalocean"))
        return cls(host, settings, problem)

    @classmethod
    async def doctor(cls, config) -> list[Check]:
        from .doctor import check_server
        return await check_server(config, SETUP)

    async def start(self) -> None:
        if self.settings.configured:
            self.host.spawn(self._logged(report_reboot_after_restart, "reboot_report_failed"),
                            name="reboot report")
            self.host.spawn(self._logged(finish_growth_after_restart, "volume_growth_report_failed"),
                            name="volume growth report")
            self.host.spawn(self._logged(finish_resize, "resize_report_failed"), name="resize report")

    async def _logged(self, report, event: str) -> None:
        try:
            await report(self)
        except Exception:  # a background task: nobody else would see the traceback
            log.exception(event)

    def require_settings(self) -> ServerConfig:
        """The provider's section, or a UserError saying how to set it up."""
        if self._problem:
            raise UserError(self._problem, 'Add [cloud] with provider = "hetzner" or '
                                           'provider = "digitalocean", then restart the bot.')
        if not self.settings.configured:
            what = ("Hetzner Cloud" if self.settings.section == "hetzner"
                    else self.settings.label)
            raise UserError(f"{what} is not set up for this bot.", SETUP[self.settings.section])
        return self.settings

    def provider(self) -> ServerProvider:
        """The provider's client; made again when the token file changes."""
        settings = self.require_settings()
        token = read_token(settings.token, f"{settings.label} API token")
        if self._connected is None or self._connected[0] != token:
            self._connected = (token, connect(settings, token))
        return self._connected[1]

    def runs_on_server(self, facts: ServerFacts) -> bool:
        return runs_on_server(self.settings, facts)

    # -- what survives a restart, or lies between an approval request and its run -----------

    async def remember_reboot(self, **mark: Any) -> None:
        await marks.remember_reboot(self.host.store, **mark)

    async def forget_reboot(self) -> None:
        await marks.forget_reboot(self.host.store)

    async def remember_growth(self, **mark: Any) -> None:
        await marks.remember_growth(self.host.store, **mark)

    async def forget_growth(self) -> None:
        await marks.forget_growth(self.host.store)

    async def remember_resize(self, **mark: Any) -> None:
        await marks.remember_resize(self.host.store, **mark)

    async def forget_resize(self) -> None:
        await marks.forget_resize(self.host.store)

    def finish_cancelled_resize(self) -> asyncio.Task:
        """An admin cancelled a resize: what it left under way is finished now. The cancelled job awaits
        the task, so that it holds the server's locks until the server is back; a bot stop cancels it
        (the mark stays, for the next start)."""
        return self.host.spawn(self._logged(lambda server: finish_resize(server, CANCELLED),
                                            "resize_report_failed"), name="cancelled resize")

    async def remember_shown_growth(self, mount: str, size: str, volume: str, current: int, new: int) -> None:
        await marks.remember_shown_growth(self.host.store, mount, size, volume, current, new)

    async def shown_growth(self, mount: str, size: str) -> dict[str, Any] | None:
        return await marks.shown_growth(self.host.store, mount, size, self.host.config.approval_expiry)

    async def remember_shown_type(self, new_type: str, current: str) -> None:
        await marks.remember_shown_type(self.host.store, new_type, current)

    async def shown_type(self, new_type: str) -> str | None:
        return await marks.shown_type(self.host.store, new_type, self.host.config.approval_expiry)

    async def grow_offer(self, mount: str) -> GrowOffer | None:
        """For the disk alerts: the grow offer for `mount`, or None (no provider, no volume)."""
        if not self.settings.configured:
            return None
        try:
            provider = self.provider()
        except UserError:
            return None
        return await grow_offer_for(self.settings, provider, mount)


def connect(settings: ServerConfig, token: str) -> ServerProvider:
    """The provider's client; DigitalOcean's module (and pydo) is imported only when used."""
    if isinstance(settings, DigitalOceanConfig):
        from .digitalocean import connect as digitalocean
        return digitalocean(settings, token)
    from .hetzner import connect as hetzner
    assert isinstance(settings, HetznerConfig)
    return hetzner(settings, token)


def runs_on_server(settings: ServerConfig, facts: ServerFacts) -> bool:
    """Is the managed server the machine this bot runs on? (Its public address is local.)"""
    if settings.bot_runs_on_server is not None:
        return settings.bot_runs_on_server
    local = {ip_address(a.address.split("%")[0])
             for addresses in psutil.net_if_addrs().values() for a in addresses
             if a.family in (socket.AF_INET, socket.AF_INET6)}
    if facts.ipv4 and ip_address(facts.ipv4) in local:
        return True
    if facts.ipv6:
        network = ip_network(facts.ipv6, strict=False)
        return any(a.version == 6 and a in network for a in local)
    return False
