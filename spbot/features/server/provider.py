"""What the server feature needs of a cloud provider, whichever it is: `ServerProvider`.

Hetzner Cloud (hetzner.py wraps providers/hetzner/) and DigitalOcean (digitalocean.py wraps
providers/digitalocean/) implement it: the same methods, returning the models of
spbot.providers.cloud_server and raising a `CloudError` subclass with what failed and what to do.
`connect` picks the one [cloud] names.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from spbot.providers.cloud_server import (
    ActionResult, MetricKind, Period, Price, Progress, ResizePlan, ResizeResult,
    ServerFacts, ServerMetrics, Snapshot, VolumeInfo,
)


class ServerProvider(Protocol):
    """The managed server and the project's volumes at one cloud provider."""

    # -- the server ----------------------------------------------------------------------------

    async def server_facts(self) -> ServerFacts:
        """Name, type with price, location, addresses, status, traffic, attached volumes."""

    async def metrics(self, kind: MetricKind, period: Period = "24h") -> ServerMetrics:
        """CPU, disk or network time series over the last hour, day or week."""

    async def start_reboot(self) -> ActionResult:
        """Ask for a soft reboot and return at once (the action id survives our own restart)."""

    async def wait_action(self, action: ActionResult, what: str) -> ActionResult:
        """Wait until an action has finished; a failed one raises CloudError."""

    async def action(self, action_id: int) -> ActionResult:
        """An action as the provider reports it now (status running, success or error)."""

    async def running_actions(self) -> list[ActionResult]:
        """The server's actions still running (after a restart: what a stopped command left)."""

    async def power_on(self, on_progress: Progress | None = None) -> ActionResult:
        """Power the server on and wait until it is."""

    async def create_snapshot(self, description: str | None = None,
                              labels: dict[str, str] | None = None,
                              on_progress: Progress | None = None) -> Snapshot:
        """An image of the server's disk; waits until it is available."""

    async def plan_resize(self, new_type: str, grow_disk: bool = False) -> ResizePlan:
        """Old and new type, the price difference, and anything that prevents the change;
        `grow_disk` also grows the disk to the new type's (no way back to a smaller type)."""

    async def resize(self, new_type: str, *, grow_disk: bool = False,
                     expect_current: str | None = None,
                     on_progress: Progress | None = None) -> ResizeResult:
        """Power off, change the type (keeping the disk unless `grow_disk`), power on again as
        it was."""

    # -- volumes and prices --------------------------------------------------------------------

    async def list_volumes(self) -> list[VolumeInfo]:
        """The volumes the bot may grow (Hetzner: the project's; DigitalOcean: the droplet's),
        with the server each is attached to."""

    async def resize_volume(self, volume: int | str, size_gb: int,
                            on_progress: Progress | None = None) -> VolumeInfo:
        """Grow a volume (the filesystem on it is grown by the feature afterwards)."""

    async def volume_for_device(self, device: str | os.PathLike[str],
                                by_id_dir: Path = Path("/dev/disk/by-id")) -> VolumeInfo | None:
        """The provider's volume behind a local block device, or None."""

    def volume_id_for_device(self, device: str | os.PathLike[str],
                             by_id_dir: Path = Path("/dev/disk/by-id")) -> int | str | None:
        """What the udev by-id link of a local block device names, without asking the provider
        (blocking: it reads the directory): the volume's id at Hetzner (`scsi-0HC_Volume_<id>`),
        its name at DigitalOcean (`scsi-0DO_Volume_<name>`); None when it is no volume of
        theirs."""

    async def volume_price(self) -> Price | None:
        """Per GB and month, from the provider's price list; None when it cannot be read."""
