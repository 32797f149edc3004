"""A stateful fake of the DigitalOcean API v2, enough for pydo, plus the droplet metadata service.

Shapes follow the published OpenAPI spec (github.com/digitalocean/openapi,
specification/resources/...): droplets/models/droplet.yml (networks v4/v6, region, size),
sizes/models/size.yml, volumes/models/volume_full.yml, droplets/models/droplet_snapshot.yml,
actions/models/action.yml, monitoring/models/metrics.yml; lists carry `links.pages`
(shared/pages.yml: first/prev/next/last as absolute URLs, `{}` on a single page) and
`meta.total` (shared/meta.yml); errors are the envelope `{id, message, request_id}`
(shared/models/error.yml); every answer carries `ratelimit-limit`, `ratelimit-remaining` and
`ratelimit-reset` (shared/headers.yml: reset is when the oldest request expires, Unix seconds).

Actions start `in-progress` and move on each GET of the action (/v2/actions/{id},
/v2/droplets/{id}/actions/{id}, /v2/volumes/{id}/actions/{id}), ending `completed` (and their
effect on the state) or `errored` when a failure was injected with `fail_action`.

Modelled from DigitalOcean's documentation, not the spec (the spec has no such rule):
- resize needs the droplet off ("Droplet must be off prior to resizing"; doctl powers off
  first); here a 422 `unprocessable_entity`.
- a second action while one runs on the droplet: 422 "Droplet already has a pending event."
- a volume resize action has type `resize_volume` (the spec only shows `attach_volume`).

Seeded state: droplet 3164444 "family-server" (s-2vcpu-4gb, fra1, active) with volume "data"
attached; volume "archive" in fra1 on no droplet; droplet 3164459 "assets" in nyc3 with volume
"assets-vol"; one earlier snapshot of family-server.
"""
from __future__ import annotations

import copy
import itertools
import math
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from . import Fault, FakeServer, Request, Response, iso_now
from .digitalocean_metrics import metrics_answer

TOKEN = "test-token"
DROPLET_ID = 3164444
OTHER_ID = 3164459
RATE_LIMIT = 5000

REGIONS = {"fra1": "Frankfurt 1", "nyc3": "New York 3", "ams3": "Amsterdam 3"}

# slug: (vcpus, memory MB, disk GB, transfer TB, monthly USD, hourly USD, description, regions)
SIZES = {
    "s-1vcpu-2gb": (1, 2048, 50, 2.0, 12.0, 0.01786, "Basic", ("fra1", "nyc3", "ams3")),
    "s-2vcpu-4gb": (2, 4096, 80, 4.0, 24.0, 0.03571, "Basic", ("fra1", "nyc3", "ams3")),
    "s-4vcpu-8gb": (4, 8192, 160, 5.0, 48.0, 0.07143, "Basic", ("fra1", "nyc3", "ams3")),
    "s-8vcpu-16gb": (8, 16384, 320, 6.0, 96.0, 0.14286, "Basic", ("fra1", "nyc3")),
    "c-2": (2, 4096, 25, 4.0, 42.0, 0.0625, "CPU-Optimized", ("fra1", "nyc3")),
    "m-2vcpu-16gb": (2, 16384, 50, 4.0, 84.0, 0.125, "Memory-Optimized", ("nyc3",)),
}
DROPLET_ACTIONS = {"enable_backups", "disable_backups", "reboot", "power_cycle", "shutdown",
                   "power_off", "power_on", "restore", "password_reset", "resize", "rebuild",
                   "rename", "change_kernel", "enable_ipv6", "snapshot"}


def region_json(slug: str) -> dict[str, Any]:
    return {"name": REGIONS[slug], "slug": slug,
            "features": ["backups", "ipv6", "metadata", "install_agent", "storage",
                         "image_transfer"],
            "available": True, "sizes": [s for s, v in SIZES.items() if slug in v[7]]}


def size_json(slug: str) -> dict[str, Any]:
    vcpus, memory, disk, transfer, monthly, hourly, description, regions = SIZES[slug]
    return {"slug": slug, "memory": memory, "vcpus": vcpus, "disk": disk, "transfer": transfer,
            "price_monthly": monthly, "price_hourly": hourly, "regions": list(regions),
            "available": True, "description": description,
            "disk_info": [{"type": "local", "size": {"amount": disk, "unit": "gib"}}]}


def error_body(code: str, message: str) -> dict[str, Any]:
    """The error envelope (shared/models/error.yml)."""
    return {"id": code, "message": message, "request_id": str(uuid.uuid4())}


class FakeDigitalOcean(FakeServer):
    """The fake API; `url` is what pydo takes as `endpoint`, `metadata_url` the droplet's own
    metadata service (`/metadata/v1/id`, plain text)."""

    def __init__(self, token: str = TOKEN, *, action_polls: int = 2, max_per_page: int = 200):
        super().__init__()
        self.token = token
        self.action_polls = action_polls
        self.max_per_page = max_per_page
        self.metadata_droplet: int | None = DROPLET_ID  # None: not running on a droplet
        self.ignore_shutdown = False  # a guest that ignores the ACPI shutdown request
        self.held: set[str] = set()  # action types kept in progress however often they are polled
        self.droplets: dict[int, dict[str, Any]] = {}
        self.volumes: dict[str, dict[str, Any]] = {}
        self.snapshots: dict[int, dict[str, Any]] = {}
        self.actions: dict[int, dict[str, Any]] = {}
        self._effects: dict[int, dict[str, Any]] = {}
        self._failing: set[str] = set()
        self._ids = itertools.count(7000)
        self.remaining = RATE_LIMIT
        self._seed()
        self._routes_v2()

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def metadata_url(self) -> str:
        return f"{self.base_url}/metadata/v1/id"

    # -- seed ------------------------------------------------------------------------------

    def _seed(self) -> None:
        self.add_droplet(DROPLET_ID, "family-server", "s-2vcpu-4gb", "fra1",
                         "203.0.113.10", "2a03:b0c0:3:d0::1a:1")
        self.add_droplet(OTHER_ID, "assets", "s-1vcpu-2gb", "nyc3",
                         "198.51.100.7", "2604:a880:400:d0::2b:1")
        self.add_volume("506f78a4-e098-11e5-ad9f-000f53306ae1", "data", 100, "fra1", DROPLET_ID)
        self.add_volume("506f78a4-e098-11e5-ad9f-000f53305eb2", "archive", 50, "fra1", None)
        self.add_volume("506f78a4-e098-11e5-ad9f-000f53301c3d", "assets-vol", 10, "nyc3",
                        OTHER_ID)
        self._add_snapshot(DROPLET_ID, "family-server-before-upgrade", "2024-03-01T10:00:00Z")

    def add_droplet(self, droplet_id: int, name: str, size: str, region: str, ipv4: str,
                    ipv6: str) -> dict[str, Any]:
        spec = size_json(size)
        droplet = {
            "id": droplet_id, "name": name, "memory": spec["memory"], "vcpus": spec["vcpus"],
            "disk": spec["disk"], "disk_info": spec["disk_info"], "locked": False,
            "status": "active", "kernel": None, "created_at": "2024-03-01T09:00:00Z",
            "features": ["monitoring", "ipv6", "private_networking"], "backup_ids": [],
            "next_backup_window": None, "snapshot_ids": [],
            "image": {"id": 63663980, "name": "24.04 (LTS) x64", "distribution": "Ubuntu",
                      "slug": "ubuntu-24-04-x64", "public": True, "regions": [region],
                      "created_at": "2024-01-01T00:00:00Z", "type": "base",
                      "min_disk_size": 7, "size_gigabytes": 2.36, "description": "",
                      "tags": [], "status": "available", "error_message": ""},
            "volume_ids": [], "size": spec, "size_slug": size,
            "networks": {
                "v4": [{"ip_address": "10.114.0.2", "netmask": "255.255.240.0",
                        "gateway": "nil", "type": "private"},
                       {"ip_address": ipv4, "netmask": "255.255.240.0",
                        "gateway": ipv4.rsplit(".", 1)[0] + ".1", "type": "public"}],
                "v6": [{"ip_address": ipv6, "netmask": 64,
                        "gateway": ipv6.rsplit(":", 2)[0] + "::1", "type": "public"}]},
            "region": region_json(region), "tags": [],
            "vpc_uuid": "760e09ef-dc84-11e8-981e-3cfdfeaae000",
        }
        self.droplets[droplet_id] = droplet
        return droplet

    def add_volume(self, volume_id: str, name: str, size: int, region: str,
                   droplet_id: int | None) -> dict[str, Any]:
        volume = {"id": volume_id, "region": region_json(region),
                  "droplet_ids": [droplet_id] if droplet_id else [], "name": name,
                  "description": f"{name} volume", "size_gigabytes": size,
                  "created_at": "2024-03-01T09:05:00Z", "filesystem_type": "ext4",
                  "filesystem_label": name, "tags": []}
        self.volumes[volume_id] = volume
        if droplet_id:
            self.droplets[droplet_id]["volume_ids"].append(volume_id)
        return volume

    def _add_snapshot(self, droplet_id: int, name: str, created: str) -> dict[str, Any]:
        droplet = self.droplets[droplet_id]
        snapshot = {"id": next(self._ids), "name": name, "created_at": created,
                    "regions": [droplet["region"]["slug"]], "min_disk_size": droplet["disk"],
                    "size_gigabytes": 2.34, "type": "snapshot", "droplet_id": droplet_id}
        self.snapshots[snapshot["id"]] = snapshot
        droplet["snapshot_ids"].append(snapshot["id"])
        return snapshot

    # -- faults ----------------------------------------------------------------------------

    def fail(self, status: int, code: str = "server_error",
             message: str = "Unexpected server-side error", times: int = 1,
             method: str | None = None, path: str | None = None) -> None:
        """Answer the next `times` matching requests with `status` and the error envelope."""
        self.add_fault(Fault(status, error_body(code, message), times=times, method=method,
                             path=path))

    def rate_limit(self, times: int = 1, reset_in: float = 1.0) -> None:
        """Answer the next `times` requests 429, headers saying the oldest request expires in
        `reset_in` seconds (shared/responses/too_many_requests.yml)."""
        def headers() -> dict[str, str]:
            return {"ratelimit-limit": str(RATE_LIMIT), "ratelimit-remaining": "0",
                    "ratelimit-reset": str(math.ceil(time.time() + reset_in))}
        self.add_fault(Fault(429, error_body("too_many_requests", "API rate limit exceeded."),
                             headers=headers, times=times))

    def fail_action(self, kind: str) -> None:
        """Make the next action of type `kind` (e.g. "reboot", "resize_volume") end `errored`."""
        self._failing.add(kind)

    # -- helpers for tests -----------------------------------------------------------------

    def droplet(self, droplet_id: int = DROPLET_ID) -> dict[str, Any]:
        return self.droplets[droplet_id]

    def action_types(self) -> list[str]:
        """Types of all actions started so far, oldest first."""
        return [a["type"] for _, a in sorted(self.actions.items())]

    # -- plumbing --------------------------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        if request.path.startswith("/metadata/"):
            return None
        if request.header("Authorization") != f"Bearer {self.token}":
            return Response(401, error_body("unauthorized", "Unable to authenticate you."))
        return None

    def not_found(self, request: Request) -> Response:
        return Response(404, error_body("not_found",
                                        "The resource you requested could not be found."))

    def _serve(self, request: Request) -> Response:
        if not request.path.startswith("/metadata/"):
            self.remaining = max(0, self.remaining - 1)
        return super()._serve(request)

    def decorate(self, response: Response) -> Response:
        response.headers.setdefault("ratelimit-limit", str(RATE_LIMIT))
        response.headers.setdefault("ratelimit-remaining", str(self.remaining))
        response.headers.setdefault("ratelimit-reset", str(int(time.time()) + 3600))
        if isinstance(response.body, dict) and "request_id" in response.body:
            response.headers.setdefault("x-request-id", response.body["request_id"])
        return response

    def _routes_v2(self) -> None:
        r = self.route
        r("GET", r"/metadata/v1/id", self._metadata_id)
        r("GET", r"/v2/droplets", self._list_droplets)
        r("GET", r"/v2/droplets/(?P<id>\d+)", self._get_droplet)
        r("GET", r"/v2/droplets/(?P<id>\d+)/snapshots", self._list_snapshots)
        r("POST", r"/v2/droplets/(?P<id>\d+)/actions", self._droplet_action)
        r("GET", r"/v2/droplets/(?P<id>\d+)/actions", self._list_droplet_actions)
        r("GET", r"/v2/droplets/(?P<id>\d+)/actions/(?P<action>\d+)", self._get_action)
        r("GET", r"/v2/actions/(?P<action>\d+)", self._get_action)
        r("GET", r"/v2/sizes", self._list_sizes)
        r("GET", r"/v2/volumes", self._list_volumes)
        r("GET", r"/v2/volumes/(?P<id>[0-9a-f-]+)", self._get_volume)
        r("POST", r"/v2/volumes/(?P<id>[0-9a-f-]+)/actions", self._volume_action)
        r("GET", r"/v2/volumes/(?P<id>[0-9a-f-]+)/actions/(?P<action>\d+)", self._get_action)
        r("GET", r"/v2/monitoring/metrics/droplet/(?P<metric>\w+)", self._metrics)

    def _page(self, request: Request, key: str, items: list[dict[str, Any]]) -> Response:
        """A page of a list: `links.pages` with absolute URLs and `meta.total`."""
        page = int(request.arg("page") or 1)
        per_page = min(int(request.arg("per_page") or 20), self.max_per_page)
        last = max(1, math.ceil(len(items) / per_page))
        chunk = items[(page - 1) * per_page: page * per_page]

        def link(number: int) -> str:
            query = {k: v[0] for k, v in request.query.items()}
            query.update(page=str(number), per_page=str(per_page))
            return f"{self.base_url}{request.path}?{urlencode(query)}"
        pages: dict[str, str] = {}
        if page > 1:
            pages.update(first=link(1), prev=link(page - 1))
        if page < last:
            pages.update(next=link(page + 1), last=link(last))
        links = {"pages": pages} if pages else {}
        return Response(200, {key: copy.deepcopy(chunk), "links": links,
                              "meta": {"total": len(items)}})

    @staticmethod
    def _unprocessable(message: str) -> Response:
        return Response(422, error_body("unprocessable_entity", message))

    # -- droplets --------------------------------------------------------------------------

    def _metadata_id(self, request: Request) -> Response:
        if self.metadata_droplet is None:
            return Response(404, None)
        return Response(200, self.metadata_droplet)  # JSON of an int is its plain text

    def _list_droplets(self, request: Request) -> Response:
        name = (request.arg("name") or "").lower()
        items = [d for _, d in sorted(self.droplets.items())
                 if not name or d["name"].lower() == name]
        return self._page(request, "droplets", items)

    def _get_droplet(self, request: Request) -> Response:
        droplet = self.droplets.get(int(request.params["id"]))
        if droplet is None:
            return self.not_found(request)
        return Response(200, {"droplet": copy.deepcopy(droplet)})

    def _list_snapshots(self, request: Request) -> Response:
        droplet_id = int(request.params["id"])
        if droplet_id not in self.droplets:
            return self.not_found(request)
        items = [{k: v for k, v in s.items() if k != "droplet_id"}
                 for _, s in sorted(self.snapshots.items()) if s["droplet_id"] == droplet_id]
        return self._page(request, "snapshots", items)

    def _droplet_action(self, request: Request) -> Response:
        droplet = self.droplets.get(int(request.params["id"]))
        if droplet is None:
            return self.not_found(request)
        body = request.json() or {}
        kind = body.get("type")
        if kind not in DROPLET_ACTIONS:
            return self._unprocessable(f"{kind!r} is not a valid action type")
        if droplet["locked"]:
            return self._unprocessable("Droplet already has a pending event.")
        effect: dict[str, Any] = {"droplet_id": droplet["id"]}
        if kind == "resize":
            if body.get("size") not in SIZES:
                return self._unprocessable("You specified an invalid size for Droplet creation.")
            if droplet["status"] != "off":
                return self._unprocessable("Droplet must be off prior to resizing.")
            effect.update(size=body["size"], disk=bool(body.get("disk")))
        if kind == "snapshot":
            effect["name"] = body.get("name") or f"{droplet['name']}-{int(time.time())}"
        droplet["locked"] = True
        action = self._new_action(kind, "droplet", droplet["id"], droplet["region"]["slug"],
                                  effect)
        return Response(201, {"action": action})

    def _list_droplet_actions(self, request: Request) -> Response:
        """dropletActions_list.yml: every action of the droplet, newest first."""
        droplet_id = int(request.params["id"])
        if droplet_id not in self.droplets:
            return self.not_found(request)
        items = [a for _, a in sorted(self.actions.items(), reverse=True)
                 if a["resource_type"] == "droplet" and a["resource_id"] == droplet_id]
        return self._page(request, "actions", items)

    # -- sizes and volumes -----------------------------------------------------------------

    def _list_sizes(self, request: Request) -> Response:
        return self._page(request, "sizes", [size_json(s) for s in SIZES])

    def _list_volumes(self, request: Request) -> Response:
        name, region = request.arg("name"), request.arg("region")
        items = [v for _, v in sorted(self.volumes.items())
                 if (name is None or v["name"] == name)
                 and (region is None or v["region"]["slug"] == region)]
        return self._page(request, "volumes", items)

    def _get_volume(self, request: Request) -> Response:
        volume = self.volumes.get(request.params["id"])
        if volume is None:
            return self.not_found(request)
        return Response(200, {"volume": copy.deepcopy(volume)})

    def _volume_action(self, request: Request) -> Response:
        volume = self.volumes.get(request.params["id"])
        if volume is None:
            return self.not_found(request)
        body = request.json() or {}
        if body.get("type") != "resize":
            return self._unprocessable("only resize is modelled by this fake")
        size, region = body.get("size_gigabytes"), body.get("region")
        if region is not None and region != volume["region"]["slug"]:
            return self._unprocessable("volume is not in the given region")
        if not isinstance(size, int) or size <= volume["size_gigabytes"] or size > 16384:
            return self._unprocessable("Volumes may only be resized upwards, to at most "
                                       "16384 GiB.")
        action = self._new_action("resize_volume", "volume", None, volume["region"]["slug"],
                                  {"volume_id": volume["id"], "size": size})
        return Response(202, {"action": action})

    # -- actions ---------------------------------------------------------------------------

    def _new_action(self, kind: str, resource_type: str, resource_id: int | None, region: str,
                    effect: dict[str, Any]) -> dict[str, Any]:
        action_id = next(self._ids)
        self.actions[action_id] = {
            "id": action_id, "status": "in-progress", "type": kind, "started_at": iso_now(),
            "completed_at": None, "resource_id": resource_id, "resource_type": resource_type,
            "region": region_json(region), "region_slug": region}
        self._effects[action_id] = {"polls": 0, "effect": effect,
                                    "errored": kind in self._failing}
        self._failing.discard(kind)
        return copy.deepcopy(self.actions[action_id])

    def _get_action(self, request: Request) -> Response:
        action = self.actions.get(int(request.params["action"]))
        if action is None:
            return self.not_found(request)
        if action["status"] == "in-progress":
            self._progress(action)
        return Response(200, {"action": copy.deepcopy(action)})

    def _progress(self, action: dict[str, Any]) -> None:
        if action["type"] in self.held:
            return
        state = self._effects[action["id"]]
        state["polls"] += 1
        if state["polls"] < self.action_polls:
            return
        action["completed_at"] = iso_now()
        droplet = self.droplets.get(state["effect"].get("droplet_id", -1))
        if droplet is not None:
            droplet["locked"] = False
        if state["errored"]:
            action["status"] = "errored"
            return
        action["status"] = "completed"
        self._apply(action["type"], state["effect"], droplet)

    def _apply(self, kind: str, effect: dict[str, Any], droplet: dict[str, Any] | None) -> None:
        if kind == "shutdown" and not self.ignore_shutdown or kind == "power_off":
            droplet["status"] = "off"
        elif kind in ("power_on", "reboot", "power_cycle"):
            droplet["status"] = "active"
        elif kind == "resize":
            spec = size_json(effect["size"])
            droplet.update(size=spec, size_slug=effect["size"], vcpus=spec["vcpus"],
                           memory=spec["memory"])
            if effect["disk"]:
                droplet["disk"] = spec["disk"]
                droplet["disk_info"] = spec["disk_info"]
        elif kind == "snapshot":
            self._add_snapshot(droplet["id"], effect["name"], iso_now().replace("+00:00", "Z"))
        elif kind == "resize_volume":
            self.volumes[effect["volume_id"]]["size_gigabytes"] = effect["size"]

    # -- monitoring ------------------------------------------------------------------------

    def _metrics(self, request: Request) -> Response:
        return metrics_answer(request, self.droplets, self.volumes)
