"""Droplet metrics of the fake DigitalOcean API (GET /v2/monitoring/metrics/droplet/{metric}):
`{status, data: {resultType: "matrix", result: [{metric: labels, values: [[unix, "v"]]}]}}`
(monitoring/models/metrics.yml; labels as in monitoring/responses/examples.yml)."""
from __future__ import annotations

from typing import Any

from . import Request, Response

CPU_MODES = {"idle": 0.70, "iowait": 0.02, "irq": 0.0, "nice": 0.0, "softirq": 0.01,
             "steal": 0.02, "system": 0.05, "user": 0.20}  # share of each second, per vCPU


def _error(code: str, message: str) -> dict[str, Any]:
    from .digitalocean_api import error_body
    return error_body(code, message)


def metrics_answer(request: Request, droplets: dict[int, dict[str, Any]],
                   volumes: dict[str, dict[str, Any]]) -> Response:
    metric = request.params["metric"]
    host, start, end = request.arg("host_id"), request.arg("start"), request.arg("end")
    if not (host and start and end and start.isdigit() and end.isdigit()):
        return Response(400, _error("bad_request", "host_id, start and end are required"))
    droplet = droplets.get(int(host)) if host.isdigit() else None
    t0, t1 = int(start), int(end)
    step = max(60, (t1 - t0) // 240)
    stamps = list(range(t0 - t0 % step + step, t1 + 1, step))
    results = [] if droplet is None else _results(metric, request, droplet, volumes, stamps)
    if results is None:
        return Response(404, _error("not_found", "The resource you requested could not be found."))
    return Response(200, {"status": "success", "data": {"resultType": "matrix", "result": results}})


def _results(metric: str, request: Request, droplet: dict[str, Any],
             volumes: dict[str, dict[str, Any]], stamps: list[int]) -> list[dict[str, Any]] | None:
    host = {"host_id": str(droplet["id"])}
    if metric == "cpu":  # cumulative seconds per mode, like node_cpu_seconds_total
        return [{"metric": {**host, "mode": mode},
                 "values": [[ts, f"{share * droplet['vcpus'] * (ts - 1.7e9):.2f}"] for ts in stamps]}
                for mode, share in CPU_MODES.items()]
    if metric == "bandwidth":  # Mbps (monitoring_get_dropletBandwidthMetrics.yml)
        interface, direction = request.arg("interface"), request.arg("direction")
        if interface not in ("public", "private") or direction not in ("inbound", "outbound"):
            return None
        base = {"public": 1.5, "private": 0.2}[interface]
        return [{"metric": {**host, "direction": direction, "interface": interface},
                 "values": [[ts, str(base + (i % 5) * 0.1)] for i, ts in enumerate(stamps)]}]
    if metric in ("filesystem_free", "filesystem_size"):  # bytes, one result per mount
        mounts = [("/dev/vda1", "/", droplet["disk"])] + [
            ("/dev/sda", f"/mnt/{v['name']}", v["size_gigabytes"])
            for v in volumes.values() if droplet["id"] in v["droplet_ids"]]
        return [{"metric": {**host, "device": device, "fstype": "ext4", "mountpoint": mount},
                 "values": [[ts, str(gb * 1024**3 if metric == "filesystem_size"
                                     else gb * 1024**3 // 2)] for ts in stamps]}
                for device, mount, gb in mounts]
    return None
