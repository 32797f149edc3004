"""The offer a disk alert makes for a full mount that is a volume: grow it by the configured step
(`volume_grow_step_gb`), with what that costs, by reacting ✅ or sending the command."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from spbot.providers.cloud_server import VolumeInfo
from spbot.providers.errors import ProviderError

from ...context import UserError
from ...logs import get_logger
from .provider import ServerProvider
from .render import Cost
from .settings import ServerConfig
from .volumes import grow_problem, volume_at, volume_cost_per_gb

log = get_logger(__name__)


@dataclass(frozen=True)
class GrowOffer:
    """What a disk alert can offer for a mount that is a volume of the provider (`provider`, as
    replies name it: Hetzner, DigitalOcean)."""

    mount: str
    volume: VolumeInfo
    new_size_gb: int
    cost: Cost | None  # of the added GB per month
    provider: str = "Hetzner"

    @property
    def command(self) -> str:
        return f"!volume grow {self.mount} +{self.new_size_gb - self.volume.size_gb}"

    @property
    def text(self) -> str:
        step = self.new_size_gb - self.volume.size_gb
        price = f" for {self.cost.text(signed=True)}" if self.cost else ""
        return (f"{self.mount} is {self.provider} volume “{self.volume.name}” ({self.volume.size_gb} GB). "
                f"React ✅ to grow it by {step} GB to {self.new_size_gb} GB{price} "
                f"(another admin approves), or send {self.command}.")


    @property
    def alert_line(self) -> str:
        """The line a disk alert adds: which volume it is, and what growing it costs."""
        price = self.cost.text(signed=True) if self.cost else "an unknown price"
        return (f"It is {self.provider} volume “{self.volume.name}” ({self.volume.size_gb} GB): "
                f"growing it to {self.new_size_gb} GB costs {price}.")


async def grow_offer_for(settings: ServerConfig, provider: ServerProvider, mount: str,
                         env: Mapping[str, str] | None = None) -> GrowOffer | None:
    """The offer for `mount`, or None when it is no volume the bot can grow. Never raises:
    the alert that asks must go out anyway."""
    try:
        found = await volume_at(settings, provider, mount, env)
        if grow_problem(found):
            return None
        size = min(found.volume.size_gb + settings.volume_grow_step_gb, settings.max_volume_gb)
        if size <= found.volume.size_gb:
            return None
        price = await volume_cost_per_gb(settings, provider)
        cost = price.times(size - found.volume.size_gb) if price else None
        return GrowOffer(found.mount.target, found.volume, size, cost, settings.label)
    except (UserError, ProviderError) as exc:
        log.info("no_grow_offer", mount=mount, reason=str(exc)[:200])
        return None
