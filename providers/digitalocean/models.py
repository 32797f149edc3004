"""Settings and the plain values the DigitalOcean adapter returns (no pydo object leaks out)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import ConfigDict

from ..cloud_server import CloudError, MetricPoint, MetricSeries  # noqa: F401  (shared with Hetzner)
from ..model import Model

MetricKind = Literal["cpu", "network", "disk"]
Period = Literal["1h", "24h", "7d"]
METADATA_ID_URL = "http://169.254.169.254/metadata/v1/id"


class DigitalOceanError(CloudError):
    """A DigitalOcean call failed. `str()` is one chat-ready sentence pair: what happened, then
    what to do. `status` is the HTTP status (0 when there was no answer), `code` the `id` of
    DigitalOcean's error envelope, `request_id` its request id (for a support ticket). `what` is the
    whole pair (the chat reply keeps it on one line), so `todo` stays empty."""

    def __init__(self, happened: str, todo: str = "", *, status: int = 0, code: str = "",
                 request_id: str | None = None):
        self.happened, self.next_step = happened, todo
        self.status, self.code, self.request_id = status, code, request_id
        super().__init__(f"{happened} {todo}".strip())


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up on one API request."""

    max_retries: int = 4
    backoff_base: float = 1.0  # seconds; doubles per retry
    backoff_cap: float = 30.0
    rate_limit_max_wait: float = 60.0  # cap on one wait for `ratelimit-reset`


@dataclass(frozen=True)
class DigitalOceanSettings:
    """Where and how to reach DigitalOcean. `droplet` is the managed droplet's name or id; when
    it is a name, the droplet the bot runs on is asked for its id first (metadata service)."""

    token: str = field(repr=False)
    droplet: str | int | None = None
    api_endpoint: str = "https://api.digitalocean.com"
    metadata_url: str | None = METADATA_ID_URL  # None: never ask the metadata service
    metadata_timeout: float = 1.0
    timeout: float = 30.0  # per HTTP request
    poll_interval: float = 2.0  # between polls of a running action
    action_timeout: float = 900.0  # give up waiting for one action after this
    shutdown_timeout: float = 120.0  # graceful shutdown before a hard power-off
    per_page: int = 200  # the API's maximum (shared/parameters.yml#/per_page)
    retry: RetryPolicy = RetryPolicy()


class _Model(Model):
    model_config = ConfigDict(frozen=True)


class Price(_Model):
    """A monthly price in USD as /v2/sizes gives it (`price_monthly`, before taxes)."""

    amount: Decimal
    currency: str = "USD"

    def __sub__(self, other: Price) -> Price:
        return Price(amount=self.amount - other.amount, currency=self.currency)


class SizeInfo(_Model):
    """A droplet size (sizes/models/size.yml)."""

    slug: str
    description: str  # Basic, General Purpose, CPU-Optimized, ...
    vcpus: int
    memory_mb: int
    disk_gb: int
    transfer_tb: float
    monthly_price: Price
    hourly_price_usd: Decimal
    regions: tuple[str, ...]
    available: bool


class Addresses(_Model):
    ipv4_public: tuple[str, ...]
    ipv4_private: tuple[str, ...]
    ipv6_public: tuple[str, ...]


class DropletFacts(_Model):
    """droplets/models/droplet.yml, flattened. `disk_gb` is the droplet's own disk, which stays
    behind the size's after a CPU/RAM-only resize."""

    id: int
    name: str
    status: str  # new, active, off, archive
    locked: bool
    size: SizeInfo
    vcpus: int
    memory_mb: int
    disk_gb: int
    region: str  # slug, e.g. fra1
    region_name: str  # e.g. Frankfurt 1
    addresses: Addresses
    volume_ids: tuple[str, ...]
    snapshot_ids: tuple[int, ...]
    features: tuple[str, ...]
    created: datetime | None

    @property
    def monthly_price(self) -> Price:
        return self.size.monthly_price


class DropletMetrics(_Model):
    kind: str
    period: str
    start: datetime
    end: datetime
    series: tuple[MetricSeries, ...]


class ActionResult(_Model):
    """actions/models/action.yml; `status` is in-progress, completed or errored."""

    id: int
    type: str
    status: str
    resource_type: str | None
    resource_id: int | None
    started: datetime | None
    completed: datetime | None


class Snapshot(_Model):
    """droplets/models/droplet_snapshot.yml."""

    id: int
    name: str
    created: datetime | None
    regions: tuple[str, ...]
    min_disk_gb: int
    size_gb: float  # billable size
    type: str  # snapshot or backup


class SnapshotResult(_Model):
    snapshot: Snapshot
    action: ActionResult


class ResizePlan(_Model):
    """What `resize` would do, to show before asking for approval."""

    droplet: str
    region: str
    current: SizeInfo
    new: SizeInfo
    grow_disk: bool  # True: permanent, the disk grows to the new size's; False: CPU/RAM only
    disk_gb_after: int
    monthly_difference: Price
    problems: tuple[str, ...]

    @property
    def possible(self) -> bool:
        return not self.problems


class ResizeResult(_Model):
    plan: ResizePlan
    actions: tuple[ActionResult, ...]
    facts: DropletFacts


class VolumeInfo(_Model):
    """volumes/models/volume_full.yml."""

    id: str
    name: str
    size_gb: int
    region: str
    droplet_ids: tuple[int, ...]
    filesystem_type: str | None
    filesystem_label: str | None
    description: str | None
    created: datetime | None

    @property
    def linux_device(self) -> str:
        """Where DigitalOcean's udev rules put a volume (docs: "Mount Volumes")."""
        return f"/dev/disk/by-id/scsi-0DO_Volume_{self.name}"
