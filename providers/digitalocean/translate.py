"""DigitalOcean JSON (as the OpenAPI spec describes it) into the adapter's plain values."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from .models import (
    ActionResult, Addresses, DropletFacts, MetricPoint, MetricSeries, Price, ResizePlan,
    SizeInfo, Snapshot, VolumeInfo,
)


def when(value: str | None) -> datetime | None:
    """An ISO 8601 time as the API gives it (`2020-07-21T18:37:44Z`)."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def size(data: dict[str, Any]) -> SizeInfo:
    """sizes/models/size.yml; prices are JSON floats in USD, read through str() to stay exact."""
    return SizeInfo(
        slug=data["slug"], description=data.get("description") or "",
        vcpus=int(data["vcpus"]), memory_mb=int(data["memory"]), disk_gb=int(data["disk"]),
        transfer_tb=float(data.get("transfer") or 0),
        monthly_price=Price(amount=Decimal(str(data["price_monthly"]))),
        hourly_price_usd=Decimal(str(data.get("price_hourly") or 0)),
        regions=tuple(data.get("regions") or ()), available=bool(data.get("available", True)))


def droplet(data: dict[str, Any]) -> DropletFacts:
    """droplets/models/droplet.yml (networks: network_v4.yml, network_v6.yml)."""
    networks = data.get("networks") or {}
    v4, v6 = networks.get("v4") or [], networks.get("v6") or []
    addresses = Addresses(
        ipv4_public=tuple(n["ip_address"] for n in v4 if n.get("type") == "public"),
        ipv4_private=tuple(n["ip_address"] for n in v4 if n.get("type") == "private"),
        ipv6_public=tuple(f"{n['ip_address']}/{n['netmask']}" if n.get("netmask") else
                          n["ip_address"] for n in v6 if n.get("type") == "public"))
    region = data.get("region") or {}
    return DropletFacts(
        id=int(data["id"]), name=data["name"], status=data["status"],
        locked=bool(data.get("locked")), size=size(data["size"]),
        vcpus=int(data["vcpus"]), memory_mb=int(data["memory"]), disk_gb=int(data["disk"]),
        region=region.get("slug", ""), region_name=region.get("name", ""),
        addresses=addresses, volume_ids=tuple(data.get("volume_ids") or ()),
        snapshot_ids=tuple(int(i) for i in data.get("snapshot_ids") or ()),
        features=tuple(data.get("features") or ()), created=when(data.get("created_at")))


def action(data: dict[str, Any]) -> ActionResult:
    """actions/models/action.yml (volume actions: volumes/models/volumeAction.yml)."""
    return ActionResult(
        id=int(data["id"]), type=data.get("type") or "", status=data.get("status") or "",
        resource_type=data.get("resource_type"), resource_id=data.get("resource_id"),
        started=when(data.get("started_at")), completed=when(data.get("completed_at")))


def snapshot(data: dict[str, Any]) -> Snapshot:
    """droplets/models/droplet_snapshot.yml."""
    return Snapshot(
        id=int(data["id"]), name=data["name"], created=when(data.get("created_at")),
        regions=tuple(data.get("regions") or ()), min_disk_gb=int(data.get("min_disk_size") or 0),
        size_gb=float(data.get("size_gigabytes") or 0), type=data.get("type") or "snapshot")


def volume(data: dict[str, Any]) -> VolumeInfo:
    """volumes/models/volume_full.yml."""
    return VolumeInfo(
        id=data["id"], name=data["name"], size_gb=int(data["size_gigabytes"]),
        region=(data.get("region") or {}).get("slug", ""),
        droplet_ids=tuple(data.get("droplet_ids") or ()),
        filesystem_type=data.get("filesystem_type") or None,
        filesystem_label=data.get("filesystem_label") or None,
        description=data.get("description") or None, created=when(data.get("created_at")))


def plan(facts: DropletFacts, target: SizeInfo, grow_disk: bool) -> ResizePlan:
    """Old and new size, the price difference, and what DigitalOcean would refuse. A CPU/RAM-only
    resize keeps the disk, so the new size must offer at least the droplet's disk; growing the
    disk is permanent and a droplet's disk never shrinks (dropletActions_post.yml, `resize`)."""
    current = facts.size
    problems = []
    if target.slug == current.slug:
        problems.append(f"the droplet already is a {target.slug}")
    if target.disk_gb < facts.disk_gb:
        problems.append(f"{target.slug} has a {target.disk_gb} GB disk, smaller than the "
                        f"droplet's {facts.disk_gb} GB (a droplet's disk cannot shrink)")
    if not target.available or facts.region not in target.regions:
        problems.append(f"{target.slug} cannot be ordered in {facts.region}")
    return ResizePlan(
        droplet=facts.name, region=facts.region, current=current, new=target,
        grow_disk=grow_disk,
        disk_gb_after=max(target.disk_gb, facts.disk_gb) if grow_disk else facts.disk_gb,
        monthly_difference=target.monthly_price - current.monthly_price,
        problems=tuple(problems))


# -- monitoring (monitoring/models/metrics.yml: data.result[].{metric, values[[ts, "v"]]}) --


def _points(values: list[list[Any]]) -> list[tuple[float, float]]:
    return [(float(ts), float(value)) for ts, value in values]


def _point(ts: float, value: float) -> MetricPoint:
    return MetricPoint(at=datetime.fromtimestamp(ts, timezone.utc), value=value)


def cpu_percent(body: dict[str, Any]) -> MetricSeries:
    """CPU busy % between samples. The API gives one counter per `mode` label (idle, user,
    system, iowait, ...; seconds spent, growing): busy = 1 - Δidle / Σ Δall."""
    by_mode = {r["metric"].get("mode", "?"): dict(_points(r["values"]))
               for r in body["data"]["result"]}
    stamps = sorted(set.intersection(*(set(v) for v in by_mode.values()))) if by_mode else []
    points = []
    for before, after in zip(stamps, stamps[1:]):
        deltas = {mode: values[after] - values[before] for mode, values in by_mode.items()}
        total = sum(deltas.values())
        if total <= 0 or min(deltas.values()) < 0:  # no time passed, or a counter reset
            continue
        points.append(_point(after, round(100 * (1 - deltas.get("idle", 0) / total), 2)))
    return MetricSeries(name="cpu", unit="%", points=tuple(points))


def plain_series(name: str, unit: str, body: dict[str, Any],
                 label: str | None = None) -> list[MetricSeries]:
    """One series per result; `label` (e.g. mountpoint) is appended to the name when given."""
    series = []
    for result in body["data"]["result"]:
        suffix = f".{result['metric'].get(label, '?')}" if label else ""
        series.append(MetricSeries(name=name + suffix, unit=unit, points=tuple(
            _point(ts, value) for ts, value in _points(result["values"]))))
    if not series and label is None:
        series.append(MetricSeries(name=name, unit=unit, points=()))
    return series
