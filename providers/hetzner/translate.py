"""hcloud's objects translated into the provider-neutral models (spbot.providers.cloud_server),
and the udev lookup of the Hetzner volume behind a block device."""
from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from ..cloud_server import (
    ActionResult, MetricPoint, MetricSeries, Price, Progress, ResizePlan, ServerFacts,
    ServerMetrics, ServerTypeInfo, VolumeInfo,
)

VOLUME_BY_ID = re.compile(r"scsi-0HC_Volume_(\d+)(?:-part\d+)?$")


async def tell(on_progress: Progress | None, message: str) -> None:
    if on_progress is not None:
        await on_progress(message)


def _price_in(server_type, location: str) -> Price | None:
    for entry in server_type.prices or []:
        if entry.get("location") == location:
            monthly = entry["price_monthly"]
            return Price(net=Decimal(monthly["net"]), gross=Decimal(monthly["gross"]))
    return None


def _type_info(server_type, location: str) -> ServerTypeInfo:
    return ServerTypeInfo(name=server_type.name, cores=server_type.cores,
                          memory_gb=server_type.memory, disk_gb=server_type.disk,
                          architecture=server_type.architecture or "x86",
                          monthly_price=_price_in(server_type, location))


def to_facts(server) -> ServerFacts:
    location = server.location.name
    net = server.public_net
    return ServerFacts(
        id=server.id, name=server.name, status=server.status,
        server_type=_type_info(server.server_type, location),
        disk_gb=server.primary_disk_size or server.server_type.disk,
        location=location, city=server.location.city,
        ipv4=net.ipv4.ip if net and net.ipv4 else None,
        ipv6=net.ipv6.ip if net and net.ipv6 else None,
        included_traffic_bytes=server.included_traffic,
        outgoing_traffic_bytes=server.outgoing_traffic,
        ingoing_traffic_bytes=server.ingoing_traffic,
        volume_ids=tuple(v.id for v in server.volumes or []),
        created=server.created,
    )


def _available_in(server_type, location: str) -> bool:
    for entry in server_type.locations or []:
        if entry.location.name == location:
            return bool(entry.available) and entry.deprecation is None
    return _price_in(server_type, location) is not None


def to_plan(server, target, grow_disk: bool = False) -> ResizePlan:
    location = server.location.name
    current = _type_info(server.server_type, location)
    new = _type_info(target, location)
    disk = server.primary_disk_size or current.disk_gb
    problems = []
    if new.name == current.name:
        problems.append(f"the server already is a {new.name}")
    if new.architecture != current.architecture:
        problems.append(f"{new.name} is {new.architecture}, the server is "
                        f"{current.architecture}; that needs a rebuild, not a resize")
    if new.disk_gb < disk:
        problems.append(f"{new.name} has a {new.disk_gb} GB disk, smaller than the server's "
                        f"{disk} GB")
    if not _available_in(target, location):
        problems.append(f"{new.name} cannot be ordered in {location}")
    difference = (new.monthly_price - current.monthly_price
                  if new.monthly_price and current.monthly_price else None)
    return ResizePlan(server=server.name, location=location, current=current, new=new,
                      disk_gb_after=max(new.disk_gb, disk) if grow_disk else disk,
                      grow_disk=grow_disk, monthly_difference=difference,
                      problems=tuple(problems))


def _unit(series_name: str) -> str:
    if series_name == "cpu":
        return "%"
    if ".iops." in series_name:
        return "IO/s"
    if ".pps." in series_name:
        return "packets/s"
    return "bytes/s"


def to_metrics(kind: str, period: str, metrics) -> ServerMetrics:
    series = tuple(
        MetricSeries(name=name, unit=_unit(name), points=tuple(
            MetricPoint(at=datetime.fromtimestamp(float(ts), timezone.utc), value=float(value))
            for ts, value in data.get("values", [])))
        for name, data in sorted(metrics.time_series.items()))
    return ServerMetrics(kind=kind, period=period, start=metrics.start, end=metrics.end,
                         step=float(metrics.step), series=series)


def to_action(action) -> ActionResult:
    return ActionResult(id=action.id, command=action.command, status=action.status,
                        progress=action.progress or 0, started=action.started,
                        finished=action.finished, error=action.error or None)


def to_volume(volume, server_names: dict[int, str]) -> VolumeInfo:
    server_id = volume.server.id if volume.server is not None else None
    return VolumeInfo(id=volume.id, name=volume.name, size_gb=volume.size,
                      linux_device=volume.linux_device, location=volume.location.name,
                      status=volume.status, server_id=server_id,
                      server_name=server_names.get(server_id) if server_id else None,
                      format=volume.format)


def to_volumes(volumes, server_names: dict[int, str]) -> list[VolumeInfo]:
    return [to_volume(v, server_names) for v in volumes]


def volume_id_for_device(device: str | os.PathLike[str],
                         by_id_dir: Path = Path("/dev/disk/by-id")) -> int | None:
    """The Hetzner volume id of a block device, from its udev by-id link
    (`scsi-0HC_Volume_<id>`, `-partN` for partitions); None if it is not a Hetzner volume."""
    direct = VOLUME_BY_ID.search(str(device))
    if direct:
        return int(direct.group(1))
    target = os.path.realpath(device)
    try:
        entries = sorted(by_id_dir.iterdir())
    except OSError:
        return None
    for entry in entries:
        match = VOLUME_BY_ID.fullmatch(entry.name)
        if match and os.path.realpath(entry) == target:
            return int(match.group(1))
    return None
