"""A stateful fake of the Hetzner Cloud API (https://docs.hetzner.cloud), enough for hcloud.

Shapes follow the API reference and hcloud-go's `hcloud/schema` (server, server_type with
per-location prices, volume, image, action, metrics, `meta.pagination`, the error envelope
`{"error": {"code", "message", "details"}}`, `RateLimit-*` headers). Actions start `running`
and progress on each `GET /actions/{id}`, ending in `success` (and their effect on the state)
or in `error` when a failure was injected with `fail_action`.

Behaviour modelled on the API reference (docs.hetzner.cloud, cloud.spec.json):
- Rate limiting: 3600 requests per hour and project; `RateLimit-Remaining` grows by one per
  second, `RateLimit-Reset` is the UNIX time at which the FULL limit is available again
  (now + 3600 s when empty). With nothing left the answer is 429 `rate_limit_exceeded`.
- "Change the Type of a Server": the server must be off; "This copies the content of its
  disk, and starts it again" — a successful change_type leaves the server running.
- Errors: 423 `locked` "The item you are trying to access is locked (there is already an
  Action running)" for a second action on a server or volume while one runs (so a POST that
  hcloud sends again after a timeout does not start a second resize); 409 `conflict` "The
  resource has changed during the request, please retry" (inject with `fail`).
- `GET /servers/{id}/actions?status=running` lists a server's running actions.

Seeded state: server 42 "family-server" (cx22, fsn1, running) with volume 100 "data"
attached; volume 101 "archive" on no server; server types cx22, cx32, cx42 and cax11 (arm).
"""
from __future__ import annotations

import copy
import itertools
import math
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from . import Fault, FakeServer, Request, Response, iso_now

TOKEN = "test-token"
SERVER_ID = 42
RATE_LIMIT = 3600

LOCATIONS = {
    "fsn1": {"id": 1, "name": "fsn1", "description": "Falkenstein DC Park 1", "country": "DE",
             "city": "Falkenstein", "latitude": 50.47612, "longitude": 12.370071,
             "network_zone": "eu-central"},
    "nbg1": {"id": 2, "name": "nbg1", "description": "Nuremberg DC Park 1", "country": "DE",
             "city": "Nuremberg", "latitude": 49.452102, "longitude": 11.076665,
             "network_zone": "eu-central"},
    "hel1": {"id": 3, "name": "hel1", "description": "Helsinki DC Park 1", "country": "FI",
             "city": "Helsinki", "latitude": 60.169855, "longitude": 24.938379,
             "network_zone": "eu-central"},
}

# name: (id, cores, memory GB, disk GB, architecture, monthly net EUR, hourly net EUR)
SERVER_TYPES = {
    "cx22": (104, 2, 4.0, 40, "x86", "3.7900000000", "0.0060000000"),
    "cx32": (105, 4, 8.0, 80, "x86", "6.8000000000", "0.0109000000"),
    "cx42": (106, 8, 16.0, 160, "x86", "16.4000000000", "0.0263000000"),
    "cax11": (45, 2, 4.0, 40, "arm", "3.7900000000", "0.0060000000"),
}
INCLUDED_TRAFFIC = 20 * 1024**4  # 20 TB, in bytes

METRIC_SERIES = {
    "cpu": ["cpu"],
    "disk": ["disk.0.iops.read", "disk.0.iops.write",
             "disk.0.bandwidth.read", "disk.0.bandwidth.write"],
    "network": ["network.0.pps.in", "network.0.pps.out",
                "network.0.bandwidth.in", "network.0.bandwidth.out"],
}

# command of an action -> server status while it runs
RUNNING_STATUS = {"shutdown_server": "stopping", "stop_server": "stopping",
                  "start_server": "starting", "reboot_server": "running",
                  "change_server_type": "migrating"}


def price(net: str) -> dict[str, str]:
    """A price object as the API gives it: net and gross (19 % VAT) as decimal strings."""
    gross = (Decimal(net) * Decimal("1.19")).quantize(Decimal("1e-16"))
    return {"net": net, "gross": str(gross)}


def server_type_json(name: str) -> dict[str, Any]:
    type_id, cores, memory, disk, arch, monthly, hourly = SERVER_TYPES[name]
    return {
        "id": type_id, "name": name, "description": name.upper(),
        "category": "cost_optimized", "cores": cores, "memory": memory, "disk": disk,
        "deprecated": False, "deprecation": None,
        "prices": [
            {"location": loc, "price_hourly": price(hourly), "price_monthly": price(monthly),
             "included_traffic": INCLUDED_TRAFFIC,
             "price_per_tb_traffic": price("1.0000000000")}
            for loc in LOCATIONS
        ],
        "storage_type": "local", "cpu_type": "shared", "architecture": arch,
        "locations": [
            {"id": loc["id"], "name": loc["name"], "deprecation": None,
             "available": True, "recommended": name == "cx22"}
            for loc in LOCATIONS.values()
        ],
    }


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The Hetzner Cloud error envelope."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


class FakeHetzner(FakeServer):
    """The fake API; `url` is what hcloud takes as `api_endpoint`."""

    def __init__(self, token: str = TOKEN, *, action_polls: int = 2, max_per_page: int = 50):
        super().__init__()
        self.token = token
        self.action_polls = action_polls
        self.max_per_page = max_per_page
        self.ignore_shutdown = False  # a guest that ignores the ACPI shutdown request
        self.held: set[str] = set()  # action commands kept running however often they are polled
        self.servers: dict[int, dict[str, Any]] = {}
        self.volumes: dict[int, dict[str, Any]] = {}
        self.images: dict[int, dict[str, Any]] = {}
        self.actions: dict[int, dict[str, Any]] = {}
        self._action_state: dict[int, dict[str, Any]] = {}
        self._failing_actions: dict[str, tuple[str, str]] = {}
        self._ids = itertools.count(1000)
        self.remaining: float = RATE_LIMIT
        self._refilled_at = time.monotonic()
        self.throttled = 0  # 429 answers given by the rate limiter
        self._seed()
        self._routes_v1()

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1"

    # -- seed ------------------------------------------------------------------------------

    def _seed(self) -> None:
        self.servers[SERVER_ID] = {
            "id": SERVER_ID, "name": "family-server", "status": "running",
            "created": "2024-03-01T10:00:00+00:00",
            "public_net": {
                "ipv4": {"id": 4201, "ip": "203.0.113.10", "blocked": False,
                         "dns_ptr": "static.10.113.0.203.clients.your-server.de"},
                "ipv6": {"id": 4202, "ip": "2001:db8:1234::/64", "blocked": False,
                         "dns_ptr": []},
                "floating_ips": [], "firewalls": [],
            },
            "private_net": [],
            "server_type": server_type_json("cx22"),
            "location": copy.deepcopy(LOCATIONS["fsn1"]),
            "image": None, "iso": None, "rescue_enabled": False, "locked": False,
            "backup_window": None,
            "outgoing_traffic": 123_456_789_012, "ingoing_traffic": 98_765_432_109,
            "included_traffic": INCLUDED_TRAFFIC,
            "protection": {"delete": False, "rebuild": False},
            "labels": {}, "volumes": [100], "load_balancers": [],
            "primary_disk_size": 40, "placement_group": None,
        }
        self.add_volume(100, "data", 50, server=SERVER_ID)
        self.add_volume(101, "archive", 20, server=None)

    def add_volume(self, volume_id: int, name: str, size: int, server: int | None,
                   location: str = "fsn1") -> dict[str, Any]:
        volume = {
            "id": volume_id, "created": "2024-03-01T10:05:00+00:00", "name": name,
            "server": server, "location": copy.deepcopy(LOCATIONS[location]), "size": size,
            "linux_device": f"/dev/disk/by-id/scsi-0HC_Volume_{volume_id}",
            "protection": {"delete": False}, "labels": {}, "status": "available",
            "format": "ext4",
        }
        self.volumes[volume_id] = volume
        return volume

    # -- faults ----------------------------------------------------------------------------

    def fail(self, status: int, code: str = "service_error", message: str = "injected",
             times: int = 1, method: str | None = None, path: str | None = None) -> None:
        """Answer the next `times` matching requests with `status` and the error envelope."""
        self.add_fault(Fault(status, error_body(code, message), times=times,
                             method=method, path=path))

    def rate_limit(self, times: int = 1) -> None:
        """Answer the next `times` requests with 429, headers as for an empty quota."""
        def headers() -> dict[str, str]:
            return {"RateLimit-Limit": str(RATE_LIMIT), "RateLimit-Remaining": "0",
                    "RateLimit-Reset": str(int(time.time()) + RATE_LIMIT)}
        self.add_fault(Fault(429, error_body("rate_limit_exceeded",
                                             "limit of 3600 requests per hour reached"),
                             headers=headers, times=times))

    def exhaust(self, left: int = 0) -> None:
        """Use up the quota: `left` requests remain, then one comes back per second."""
        with self.lock:
            self.remaining, self._refilled_at = float(left), time.monotonic()

    def fail_action(self, command: str, code: str = "action_failed",
                    message: str = "Action failed") -> None:
        """Make the next action with `command` end in status `error`."""
        self._failing_actions[command] = (code, message)

    # -- helpers for tests -----------------------------------------------------------------

    def server(self, server_id: int = SERVER_ID) -> dict[str, Any]:
        return self.servers[server_id]

    def commands(self) -> list[str]:
        """Commands of all actions created so far, oldest first."""
        return [a["command"] for _, a in sorted(self.actions.items())]

    # -- plumbing --------------------------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        if request.header("Authorization") != f"Bearer {self.token}":
            return Response(401, error_body("unauthorized", "unable to authenticate"))
        return None

    def not_found(self, request: Request) -> Response:
        return Response(404, error_body("not_found", f"{request.path} not found"))

    def _refill(self) -> None:
        now = time.monotonic()
        self.remaining = min(RATE_LIMIT, self.remaining + (now - self._refilled_at))
        self._refilled_at = now

    def _serve(self, request: Request) -> Response:
        self._refill()
        if self.remaining < 1:
            self.throttled += 1
            return Response(429, error_body("rate_limit_exceeded",
                                            "limit of 3600 requests per hour reached"))
        self.remaining -= 1
        return super()._serve(request)

    def decorate(self, response: Response) -> Response:
        with self.lock:
            remaining = int(self.remaining)
        response.headers.setdefault("RateLimit-Limit", str(RATE_LIMIT))
        response.headers.setdefault("RateLimit-Remaining", str(remaining))
        response.headers.setdefault("RateLimit-Reset",
                                    str(int(time.time()) + RATE_LIMIT - remaining))
        return response

    def _routes_v1(self) -> None:
        r = self.route
        r("GET", r"/v1/servers", self._list_servers)
        r("GET", r"/v1/servers/(?P<id>\d+)", self._get_server)
        r("GET", r"/v1/servers/(?P<id>\d+)/metrics", self._metrics)
        r("GET", r"/v1/servers/(?P<id>\d+)/actions", self._list_server_actions)
        r("POST", r"/v1/servers/(?P<id>\d+)/actions/(?P<verb>\w+)", self._server_action)
        r("GET", r"/v1/server_types", self._list_server_types)
        r("GET", r"/v1/server_types/(?P<id>\d+)", self._get_server_type)
        r("GET", r"/v1/volumes", self._list_volumes)
        r("GET", r"/v1/volumes/(?P<id>\d+)", self._get_volume)
        r("POST", r"/v1/volumes/(?P<id>\d+)/actions/resize", self._resize_volume)
        r("GET", r"/v1/images/(?P<id>\d+)", self._get_image)
        r("GET", r"/v1/actions/(?P<id>\d+)", self._get_action)

    def _page(self, request: Request, key: str, items: list[dict[str, Any]]) -> Response:
        page = int(request.arg("page") or 1)
        per_page = min(int(request.arg("per_page") or 25), self.max_per_page)
        last = max(1, math.ceil(len(items) / per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        pagination = {"page": page, "per_page": per_page,
                      "previous_page": page - 1 if page > 1 else None,
                      "next_page": page + 1 if page < last else None,
                      "last_page": last, "total_entries": len(items)}
        return Response(200, {key: copy.deepcopy(chunk), "meta": {"pagination": pagination}})

    def _found(self, table: dict[int, dict[str, Any]], request: Request, key: str) -> Response:
        item = table.get(int(request.params["id"]))
        if item is None:
            return Response(404, error_body("not_found", f"{key} not found"))
        return Response(200, {key: copy.deepcopy(item)})

    # -- servers ---------------------------------------------------------------------------

    def _list_servers(self, request: Request) -> Response:
        name = request.arg("name")
        items = [s for s in self.servers.values() if name is None or s["name"] == name]
        return self._page(request, "servers", items)

    def _get_server(self, request: Request) -> Response:
        return self._found(self.servers, request, "server")

    def _server_action(self, request: Request) -> Response:
        server = self.servers.get(int(request.params["id"]))
        if server is None:
            return Response(404, error_body("not_found", "server not found"))
        verb, body = request.params["verb"], request.json() or {}
        starters = {"reboot": self._start_simple("reboot_server"),
                    "shutdown": self._start_simple("shutdown_server"),
                    "poweroff": self._start_simple("stop_server"),
                    "poweron": self._start_simple("start_server"),
                    "change_type": self._start_change_type,
                    "create_image": self._start_create_image}
        starter = starters.get(verb)
        if starter is None:
            return Response(404, error_body("not_found", f"action {verb} not supported"))
        if self._busy(server["id"], "server"):
            return self._locked()
        return starter(server, body)

    def _list_server_actions(self, request: Request) -> Response:
        server_id = int(request.params["id"])
        wanted = request.query.get("status") or []
        items = [a for _, a in sorted(self.actions.items())
                 if {"id": server_id, "type": "server"} in a["resources"]
                 and (not wanted or a["status"] in wanted)]
        return self._page(request, "actions", items)

    def _busy(self, resource_id: int, kind: str) -> bool:
        return any(a["status"] == "running" and {"id": resource_id, "type": kind} in a["resources"]
                   for a in self.actions.values())

    @staticmethod
    def _locked() -> Response:
        return Response(423, error_body("locked", "The item you are trying to access is locked "
                                                  "(there is already an Action running)"))

    def _start_simple(self, command: str):
        def start(server: dict[str, Any], body: dict[str, Any]) -> Response:
            action = self._new_action(command, [{"id": server["id"], "type": "server"}],
                                      server_id=server["id"])
            return Response(201, {"action": action})
        return start

    def _start_change_type(self, server: dict[str, Any], body: dict[str, Any]) -> Response:
        name = body.get("server_type")
        if name not in SERVER_TYPES or not isinstance(body.get("upgrade_disk"), bool):
            return Response(400, error_body("invalid_input", "invalid input in fields",
                                            {"fields": [{"name": "server_type",
                                                         "messages": ["invalid"]}]}))
        if server["status"] != "off":
            return Response(412, error_body("server_not_stopped",
                                            "server must be stopped before changing its type"))
        action = self._new_action("change_server_type", [{"id": server["id"], "type": "server"}],
                                  server_id=server["id"], new_type=name,
                                  upgrade_disk=body["upgrade_disk"])
        return Response(201, {"action": action})

    def _start_create_image(self, server: dict[str, Any], body: dict[str, Any]) -> Response:
        image_id = next(self._ids)
        self.images[image_id] = {
            "id": image_id, "type": body.get("type", "snapshot"), "status": "creating",
            "name": None, "description": body.get("description") or f"{server['name']} snapshot",
            "image_size": None, "disk_size": float(server["primary_disk_size"]),
            "created": iso_now(), "created_from": {"id": server["id"], "name": server["name"]},
            "bound_to": None, "os_flavor": "debian", "os_version": None,
            "architecture": server["server_type"]["architecture"], "rapid_deploy": False,
            "protection": {"delete": False}, "deprecated": None, "deleted": None,
            "labels": body.get("labels") or {},
        }
        action = self._new_action("create_image",
                                  [{"id": server["id"], "type": "server"},
                                   {"id": image_id, "type": "image"}], image_id=image_id)
        return Response(201, {"action": action, "image": copy.deepcopy(self.images[image_id])})

    def _metrics(self, request: Request) -> Response:
        if int(request.params["id"]) not in self.servers:
            return Response(404, error_body("not_found", "server not found"))
        kinds = [k for value in request.query.get("type", []) for k in value.split(",") if k]
        start, end = request.arg("start"), request.arg("end")
        if not kinds or not start or not end or any(k not in METRIC_SERIES for k in kinds):
            return Response(400, error_body("invalid_input", "type, start and end are required"))
        t0 = datetime.fromisoformat(start).timestamp()
        t1 = datetime.fromisoformat(end).timestamp()
        step = float(request.arg("step") or max(1.0, (t1 - t0) / 100))
        stamps = [t0 + i * step for i in range(int((t1 - t0) // step) + 1)]
        series = {name: {"values": [[ts, f"{(i % 10) * 1.5 + n:.2f}"]
                                    for i, ts in enumerate(stamps)]}
                  for kind in kinds for n, name in enumerate(METRIC_SERIES[kind])}
        return Response(200, {"metrics": {
            "start": datetime.fromtimestamp(t0, timezone.utc).isoformat(),
            "end": datetime.fromtimestamp(t1, timezone.utc).isoformat(),
            "step": step, "time_series": series}})

    # -- server types, volumes, images -----------------------------------------------------

    def _list_server_types(self, request: Request) -> Response:
        name = request.arg("name")
        items = [server_type_json(n) for n in SERVER_TYPES if name is None or n == name]
        return self._page(request, "server_types", items)

    def _get_server_type(self, request: Request) -> Response:
        for name, spec in SERVER_TYPES.items():
            if spec[0] == int(request.params["id"]):
                return Response(200, {"server_type": server_type_json(name)})
        return Response(404, error_body("not_found", "server type not found"))

    def _list_volumes(self, request: Request) -> Response:
        name = request.arg("name")
        items = [v for _, v in sorted(self.volumes.items()) if name is None or v["name"] == name]
        return self._page(request, "volumes", items)

    def _get_volume(self, request: Request) -> Response:
        return self._found(self.volumes, request, "volume")

    def _resize_volume(self, request: Request) -> Response:
        volume = self.volumes.get(int(request.params["id"]))
        if volume is None:
            return Response(404, error_body("not_found", "volume not found"))
        if self._busy(volume["id"], "volume"):
            return self._locked()
        size = (request.json() or {}).get("size")
        if not isinstance(size, int) or size <= volume["size"]:
            return Response(422, error_body("invalid_input",
                                            "size must be larger than the current size"))
        action = self._new_action("resize_volume", [{"id": volume["id"], "type": "volume"}],
                                  volume_id=volume["id"], size=size)
        return Response(201, {"action": action})

    def _get_image(self, request: Request) -> Response:
        return self._found(self.images, request, "image")

    # -- actions ---------------------------------------------------------------------------

    def _new_action(self, command: str, resources: list[dict[str, Any]],
                    **effect: Any) -> dict[str, Any]:
        action_id = next(self._ids)
        action = {"id": action_id, "command": command, "status": "running", "progress": 0,
                  "started": iso_now(), "finished": None, "resources": resources,
                  "error": None}
        self.actions[action_id] = action
        self._action_state[action_id] = {"polls": 0, "effect": effect,
                                         "failure": self._failing_actions.pop(command, None)}
        server = self.servers.get(effect.get("server_id", -1))
        if server is not None and command in RUNNING_STATUS:
            server["status"] = RUNNING_STATUS[command]
        return copy.deepcopy(action)

    def _get_action(self, request: Request) -> Response:
        action = self.actions.get(int(request.params["id"]))
        if action is None:
            return Response(404, error_body("not_found", "action not found"))
        if action["status"] == "running":
            self._progress(action)
        return Response(200, {"action": copy.deepcopy(action)})

    def _progress(self, action: dict[str, Any]) -> None:
        if action["command"] in self.held:
            return
        state = self._action_state[action["id"]]
        state["polls"] += 1
        if state["polls"] < self.action_polls:
            action["progress"] = int(100 * state["polls"] / self.action_polls)
            return
        action["finished"] = iso_now()
        if state["failure"] is not None:
            code, message = state["failure"]
            action.update(status="error", error={"code": code, "message": message})
            self._undo_status(state["effect"])
            return
        action.update(status="success", progress=100)
        self._apply(action["command"], state["effect"])

    def _undo_status(self, effect: dict[str, Any]) -> None:
        server = self.servers.get(effect.get("server_id", -1))
        if server is not None and server["status"] in ("migrating", "starting", "stopping"):
            server["status"] = "off" if server["status"] in ("migrating", "starting") else "running"

    def _apply(self, command: str, effect: dict[str, Any]) -> None:
        server = self.servers.get(effect.get("server_id", -1))
        if command == "shutdown_server":
            server["status"] = "running" if self.ignore_shutdown else "off"
        elif command == "stop_server":
            server["status"] = "off"
        elif command in ("start_server", "reboot_server"):
            server["status"] = "running"
        elif command == "change_server_type":
            server["server_type"] = server_type_json(effect["new_type"])
            if effect["upgrade_disk"]:
                server["primary_disk_size"] = server["server_type"]["disk"]
            server["status"] = "running"  # "copies the content of its disk, and starts it again"
        elif command == "create_image":
            self.images[effect["image_id"]].update(status="available", image_size=1.84)
        elif command == "resize_volume":
            self.volumes[effect["volume_id"]]["size"] = effect["size"]
