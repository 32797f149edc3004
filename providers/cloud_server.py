"""A cloud server and its volumes as the bot sees them, whatever the provider: the models every
server adapter returns (Hetzner, DigitalOcean) and the error type they raise.

Amounts are monthly, in the provider's billing currency: EUR without and with VAT at Hetzner, USD
before tax at DigitalOcean (its API gives no tax-inclusive price; `gross` is None then).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import ConfigDict

from .errors import ProviderError
from .model import Model

__all__ = [
    "ActionResult", "CloudError", "MetricKind", "MetricPoint", "MetricSeries", "Period", "Price",
    "Progress", "ResizePlan", "ResizeResult", "ServerFacts", "ServerMetrics", "ServerTypeInfo",
    "Snapshot", "VolumeInfo",
]

Progress = Callable[[str], Awaitable[None]]
MetricKind = Literal["cpu", "disk", "network"]
Period = Literal["1h", "24h", "7d"]


class CloudError(ProviderError):
    """A call to a cloud provider failed; the message names what failed and what to do."""


class _Model(Model):
    model_config = ConfigDict(frozen=True)


class Price(_Model):
    """A monthly price without and (when the provider says) with tax: EUR net/gross at Hetzner,
    USD before tax at DigitalOcean."""

    net: Decimal
    gross: Decimal | None
    currency: str = "EUR"

    def __sub__(self, other: Price) -> Price:
        gross = None if self.gross is None or other.gross is None else self.gross - other.gross
        return Price(net=self.net - other.net, gross=gross, currency=self.currency)


class ServerTypeInfo(_Model):
    name: str
    cores: int
    memory_gb: float
    disk_gb: int
    architecture: str
    monthly_price: Price | None  # in the server's location; None if not sold there


class ServerFacts(_Model):
    id: int
    name: str
    status: str  # Hetzner: running, off, starting, ...; DigitalOcean: active, off, new, archive
    server_type: ServerTypeInfo
    disk_gb: int  # the server's own disk (may be smaller than the type's after a resize)
    location: str
    city: str | None
    ipv4: str | None
    ipv6: str | None  # the routed /64 network
    included_traffic_bytes: int | None
    outgoing_traffic_bytes: int | None
    ingoing_traffic_bytes: int | None
    volume_ids: tuple[int | str, ...]  # Hetzner: numbers; DigitalOcean: uuids
    created: datetime | None


class MetricPoint(_Model):
    at: datetime
    value: float


class MetricSeries(_Model):
    name: str  # e.g. "cpu", "disk.0.iops.read", "network.0.bandwidth.in", "filesystem./.used"
    unit: str
    points: tuple[MetricPoint, ...]

    @property
    def latest(self) -> float | None:
        return self.points[-1].value if self.points else None

    @property
    def average(self) -> float | None:
        return sum(p.value for p in self.points) / len(self.points) if self.points else None

    @property
    def peak(self) -> float | None:
        return max((p.value for p in self.points), default=None)


class ServerMetrics(_Model):
    kind: str
    period: str
    start: datetime
    end: datetime
    step: float
    series: tuple[MetricSeries, ...]


class ActionResult(_Model):
    id: int
    command: str
    status: str
    progress: int
    started: datetime | None
    finished: datetime | None
    error: dict[str, Any] | None = None  # the provider's {"code", "message"} when status is error


class Snapshot(_Model):
    image_id: int
    description: str
    status: str  # "available" once done
    image_size_gb: float | None  # compressed size Hetzner bills; may lag behind a moment
    disk_size_gb: float | None
    action: ActionResult


class ResizePlan(_Model):
    """What `resize` would do, to show before asking for approval."""

    server: str
    location: str
    current: ServerTypeInfo
    new: ServerTypeInfo
    disk_gb_after: int  # kept unless grow_disk: then a later downgrade is no longer possible
    grow_disk: bool = False
    monthly_difference: Price | None
    problems: tuple[str, ...]

    @property
    def possible(self) -> bool:
        return not self.problems


class ResizeResult(_Model):
    plan: ResizePlan
    actions: tuple[ActionResult, ...]
    facts: ServerFacts


class VolumeInfo(_Model):
    id: int | str  # Hetzner: a number; DigitalOcean: a uuid
    name: str
    size_gb: int
    linux_device: str
    location: str
    status: str
    server_id: int | None
    server_name: str | None
    format: str | None
