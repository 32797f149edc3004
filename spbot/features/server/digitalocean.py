"""DigitalOcean as the server feature's provider: the adapter in providers/digitalocean/ behind the
ServerProvider interface (provider.py), its values translated into spbot.providers.cloud_server's,
and the udev lookup of its volumes (`scsi-0DO_Volume_<name>`).

pydo costs ~47 MiB once imported: the adapter is imported when a [digitalocean] provider is first
used, never by a bot that manages a Hetzner server."""
from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING, Any

from spbot.providers.cloud_server import (
    ActionResult, MetricKind, MetricPoint, MetricSeries, Period, Price, Progress, ResizePlan,
    ResizeResult, ServerFacts, ServerMetrics, ServerTypeInfo, Snapshot, VolumeInfo,
)

from .settings import DigitalOceanConfig

if TYPE_CHECKING:
    from spbot.providers import digitalocean as do

VOLUME_BY_ID = re.compile(r"scsi-0DO_Volume_(.+?)(?:-part\d+)?$")
STATUS = {"in-progress": "running", "completed": "success", "errored": "error"}
NO_REASON = {"code": "errored", "message": "DigitalOcean gives no reason"}
MBIT = 125_000  # bytes per second in one Mbit/s
TB = 10**12  # sizes/models/size.yml: `transfer` is in terabytes


class DigitalOceanServer:
    """A ServerProvider for the droplet named in [digitalocean] (or the one the bot runs on)."""

    def __init__(self, settings: do.DigitalOceanSettings, client: Any = None):
        from spbot.providers.digitalocean import DigitalOceanCloud
        self._do = DigitalOceanCloud(settings, client)

    # -- the server ----------------------------------------------------------------------------

    async def server_facts(self) -> ServerFacts:
        return to_facts(await self._do.droplet_facts())

    async def metrics(self, kind: MetricKind, period: Period = "24h") -> ServerMetrics:
        return to_metrics(await self._do.metrics(kind, period))

    async def start_reboot(self) -> ActionResult:
        return to_action(await self._do.start_action("reboot"))

    async def wait_action(self, action: ActionResult, what: str) -> ActionResult:
        return to_action(await self._do.wait_action(action.id, what))

    async def action(self, action_id: int) -> ActionResult:
        return to_action(await self._do.action(action_id))

    async def running_actions(self) -> list[ActionResult]:
        return [to_action(a) for a in await self._do.running_actions()]

    async def power_on(self, on_progress: Progress | None = None) -> ActionResult:
        return to_action(await self._do.power_on(on_progress))

    async def create_snapshot(self, description: str | None = None,
                              labels: dict[str, str] | None = None,
                              on_progress: Progress | None = None) -> Snapshot:
        """A snapshot named `description` (DigitalOcean snapshots carry no labels)."""
        result = await self._do.create_snapshot(description, on_progress)
        made = result.snapshot
        return Snapshot(image_id=made.id, description=made.name, status="available",
                        image_size_gb=made.size_gb, disk_size_gb=made.min_disk_gb or None,
                        action=to_action(result.action))

    async def plan_resize(self, new_type: str, grow_disk: bool = False) -> ResizePlan:
        return to_plan(await self._do.plan_resize(new_type, grow_disk))

    async def resize(self, new_type: str, *, grow_disk: bool = False,
                     expect_current: str | None = None,
                     on_progress: Progress | None = None) -> ResizeResult:
        done = await self._do.resize(new_type, grow_disk=grow_disk,
                                     expect_current=expect_current, on_progress=on_progress)
        return ResizeResult(plan=to_plan(done.plan),
                            actions=tuple(to_action(a) for a in done.actions),
                            facts=to_facts(done.facts))

    # -- volumes and prices --------------------------------------------------------------------

    async def list_volumes(self) -> list[VolumeInfo]:
        """The volumes attached to the droplet."""
        droplet = await self._do.droplet_facts()
        return [to_volume(v, droplet) for v in await self._do.list_volumes()]

    async def resize_volume(self, volume: int | str, size_gb: int,
                            on_progress: Progress | None = None) -> VolumeInfo:
        grown = await self._do.resize_volume(str(volume), size_gb, on_progress)
        return to_volume(grown, await self._do.droplet_facts())

    async def volume_for_device(self, device: str | os.PathLike[str],
                                by_id_dir: Path = Path("/dev/disk/by-id")) -> VolumeInfo | None:
        name = await asyncio.to_thread(self.volume_id_for_device, device, by_id_dir)
        if name is None:
            return None
        return next((v for v in await self.list_volumes() if v.name == name), None)

    def volume_id_for_device(self, device: str | os.PathLike[str],
                             by_id_dir: Path = Path("/dev/disk/by-id")) -> str | None:
        """The volume's NAME: DigitalOcean's udev link names a volume, not its uuid."""
        direct = VOLUME_BY_ID.search(str(device))
        if direct:
            return direct.group(1)
        target = os.path.realpath(device)
        try:
            entries = sorted(by_id_dir.iterdir())
        except OSError:
            return None
        for entry in entries:
            match = VOLUME_BY_ID.fullmatch(entry.name)
            if match and os.path.realpath(entry) == target:
                return match.group(1)
        return None

    async def volume_price(self) -> Price | None:
        return None  # no price API for volumes: [digitalocean] volume_price_per_gb_month


def connect(settings: DigitalOceanConfig, token: str) -> DigitalOceanServer:
    return DigitalOceanServer(settings.provider_settings(token))


# -- the adapter's values as the provider-neutral ones -----------------------------------------


def _price(price: do.Price) -> Price:
    return Price(net=price.amount, gross=None, currency=price.currency)


def _type(size: do.SizeInfo) -> ServerTypeInfo:
    return ServerTypeInfo(name=size.slug, cores=size.vcpus, memory_gb=size.memory_mb / 1024,
                          disk_gb=size.disk_gb, architecture="x86",
                          monthly_price=_price(size.monthly_price))


def to_facts(droplet: do.DropletFacts) -> ServerFacts:
    """DigitalOcean reports the included transfer but not the traffic used."""
    addresses = droplet.addresses
    return ServerFacts(
        id=droplet.id, name=droplet.name, status=droplet.status, server_type=_type(droplet.size),
        disk_gb=droplet.disk_gb, location=droplet.region, city=droplet.region_name or None,
        ipv4=addresses.ipv4_public[0] if addresses.ipv4_public else None,
        ipv6=addresses.ipv6_public[0] if addresses.ipv6_public else None,
        included_traffic_bytes=int(droplet.size.transfer_tb * TB) or None,
        outgoing_traffic_bytes=None, ingoing_traffic_bytes=None,
        volume_ids=droplet.volume_ids, created=droplet.created)


def to_action(action: do.ActionResult) -> ActionResult:
    status = STATUS.get(action.status, action.status)
    return ActionResult(id=action.id, command=action.type, status=status,
                        progress=100 if status == "success" else 0, started=action.started,
                        finished=action.completed,
                        error=NO_REASON if status == "error" else None)


def to_plan(plan: do.ResizePlan) -> ResizePlan:
    return ResizePlan(server=plan.droplet, location=plan.region, current=_type(plan.current),
                      new=_type(plan.new), disk_gb_after=plan.disk_gb_after,
                      grow_disk=plan.grow_disk, monthly_difference=_price(plan.monthly_difference),
                      problems=plan.problems)


def to_volume(volume: do.VolumeInfo, droplet: do.DropletFacts) -> VolumeInfo:
    attached = droplet.id in volume.droplet_ids
    return VolumeInfo(id=volume.id, name=volume.name, size_gb=volume.size_gb,
                      linux_device=volume.linux_device, location=volume.region,
                      status="available", server_id=droplet.id if attached else None,
                      server_name=droplet.name if attached else None,
                      format=volume.filesystem_type)


def to_metrics(metrics: do.DropletMetrics) -> ServerMetrics:
    """CPU as it is; bandwidth (Mbit/s) as bytes/s named like Hetzner's
    (`network.public.bandwidth.in`); filesystem free and size as the share used per mount
    (`filesystem / used`): DigitalOcean has no disk I/O metrics."""
    series: list[MetricSeries] = []
    sizes = {s.name.removeprefix("filesystem.size."): s for s in metrics.series
             if s.name.startswith("filesystem.size.")}
    for one in metrics.series:
        if one.name.startswith("bandwidth."):
            _, interface, direction = one.name.split(".", 2)
            series.append(MetricSeries(
                name=f"network.{interface}.bandwidth.{direction.removesuffix('bound')}",
                unit="bytes/s", points=tuple(MetricPoint(at=p.at, value=p.value * MBIT)
                                             for p in one.points)))
        elif one.name.startswith("filesystem.free."):
            mount = one.name.removeprefix("filesystem.free.")
            series.append(_used(mount, one, sizes.get(mount)))
        elif not one.name.startswith("filesystem."):
            series.append(MetricSeries(name=one.name, unit=one.unit, points=tuple(
                MetricPoint(at=p.at, value=p.value) for p in one.points)))
    return ServerMetrics(kind=metrics.kind, period=metrics.period, start=metrics.start,
                         end=metrics.end, step=_step(series, metrics), series=tuple(series))


def _used(mount: str, free: do.MetricSeries, size: do.MetricSeries | None) -> MetricSeries:
    totals = {p.at: p.value for p in size.points} if size else {}
    points = tuple(MetricPoint(at=p.at, value=100 * (1 - p.value / totals[p.at]))
                   for p in free.points if totals.get(p.at))
    return MetricSeries(name=f"filesystem {mount} used", unit="%", points=points)


def _step(series: list[MetricSeries], metrics: do.DropletMetrics) -> float:
    """Seconds between points (the API chooses it from the window)."""
    gaps = [(b.at - a.at).total_seconds() for s in series for a, b in zip(s.points, s.points[1:])]
    if gaps:
        return float(median(gaps))
    return (metrics.end - metrics.start).total_seconds() / 240
