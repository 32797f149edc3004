"""A stateful fake of Cloudflare API v4: zones looked up by name and their DNS records.

Shapes follow the API reference and cloudflare-python's generated types (Zone,
RecordResponse, V4PagePaginationArray): every answer is `{"success", "errors", "messages",
"result", "result_info"}`; records carry id, name (fully qualified), type, content,
proxiable, proxied, ttl, settings, meta, comment, tags, created_on, modified_on and, for MX,
priority. `max_per_page` caps page sizes so a small zone still spans several pages.
A bad token gets 403 with error 10000 "Authentication error".
"""
from __future__ import annotations

import itertools
import math
import uuid
from typing import Any

from . import Fault, FakeServer, Request, Response, iso_now

TOKEN = "cf-test-token"
ACCOUNT = {"id": "023e105f4ecef8ad9ca31a8372d0c353", "name": "Family"}


def envelope(result: Any = None, *, success: bool = True,
             errors: list[dict[str, Any]] | None = None,
             result_info: dict[str, int] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": success, "errors": errors or [], "messages": [],
                            "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return body


def error(status: int, code: int, message: str) -> Response:
    return Response(status, envelope(None, success=False,
                                     errors=[{"code": code, "message": message}]))


class FakeCloudflare(FakeServer):
    """The fake API; `url` is the client's base URL (…/client/v4)."""

    def __init__(self, token: str = TOKEN, *, max_per_page: int = 5_000_000):
        super().__init__()
        self.token = token
        self.max_per_page = max_per_page
        self.zones: dict[str, dict[str, Any]] = {}
        self.records: dict[str, dict[str, Any]] = {}  # id -> record (with its zone id)
        self._order = itertools.count()
        r = self.route
        r("GET", r"/client/v4/zones", self._list_zones)
        r("GET", r"/client/v4/zones/(?P<zone>\w+)/dns_records", self._list_records)
        r("POST", r"/client/v4/zones/(?P<zone>\w+)/dns_records", self._create)
        r("PUT", r"/client/v4/zones/(?P<zone>\w+)/dns_records/(?P<id>\w+)", self._overwrite)
        r("PATCH", r"/client/v4/zones/(?P<zone>\w+)/dns_records/(?P<id>\w+)", self._patch)
        r("DELETE", r"/client/v4/zones/(?P<zone>\w+)/dns_records/(?P<id>\w+)", self._delete)

    @property
    def url(self) -> str:
        return f"{self.base_url}/client/v4"

    # -- state for tests -------------------------------------------------------------------

    def add_zone(self, name: str) -> str:
        zone_id = uuid.uuid4().hex
        now = iso_now(precise=True)
        self.zones[zone_id] = {
            "id": zone_id, "name": name, "status": "active", "paused": False, "type": "full",
            "development_mode": 0, "name_servers": ["ada.ns.cloudflare.com",
                                                   "bob.ns.cloudflare.com"],
            "original_name_servers": None, "original_registrar": None,
            "original_dnshost": None, "created_on": now, "modified_on": now,
            "activated_on": now, "meta": {"dns_only": False, "step": 2},
            "owner": {"id": None, "type": "organization", "name": None},
            "account": dict(ACCOUNT), "permissions": ["#dns_records:edit", "#zone:read"],
            "plan": {"id": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "name": "Free Website",
                     "price": 0, "currency": "USD", "frequency": "", "is_subscribed": False,
                     "can_subscribe": False, "legacy_id": "free", "legacy_discount": False,
                     "externally_managed": False},
        }
        return zone_id

    def add_record(self, zone: str, type: str, name: str, content: str, ttl: int = 3600,
                   priority: int | None = None) -> str:
        """Add a record to the zone named `zone`; `name` is fully qualified."""
        zone_id = self.zone_id(zone)
        record = self._new_record({"type": type, "name": name, "content": content, "ttl": ttl,
                                   "priority": priority}, zone_id)
        return record["id"]

    def zone_id(self, name: str) -> str:
        return next(z["id"] for z in self.zones.values() if z["name"] == name)

    def zone_records(self, zone: str) -> list[dict[str, Any]]:
        zone_id = self.zone_id(zone)
        return [self._public(r) for r in self.records.values() if r["_zone"] == zone_id]

    def fail(self, status: int, code: int, message: str, times: int = 1,
             method: str | None = None, path: str | None = None,
             headers: dict[str, str] | None = None) -> None:
        body = envelope(None, success=False, errors=[{"code": code, "message": message}])
        self.add_fault(Fault(status, body, headers=headers or {}, times=times, method=method,
                             path=path))

    # -- plumbing --------------------------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        if request.header("Authorization") != f"Bearer {self.token}":
            return error(403, 10000, "Authentication error")
        return None

    def not_found(self, request: Request) -> Response:
        return error(404, 7003, "Could not route to " + request.path
                     + ", perhaps your object identifier is invalid?")

    def _page(self, request: Request, items: list[dict[str, Any]],
              default_per_page: int) -> Response:
        page = max(1, int(request.arg("page") or 1))
        per_page = min(int(request.arg("per_page") or default_per_page), self.max_per_page)
        chunk = items[(page - 1) * per_page: page * per_page]
        info = {"page": page, "per_page": per_page, "count": len(chunk),
                "total_count": len(items), "total_pages": math.ceil(len(items) / per_page)}
        return Response(200, envelope(chunk, result_info=info))

    # -- zones -----------------------------------------------------------------------------

    def _list_zones(self, request: Request) -> Response:
        name = request.arg("name")
        zones = [dict(z) for z in self.zones.values() if name is None or z["name"] == name]
        return self._page(request, zones, 20)

    def _zone(self, request: Request) -> dict[str, Any] | None:
        return self.zones.get(request.params["zone"])

    # -- records ---------------------------------------------------------------------------

    def _list_records(self, request: Request) -> Response:
        zone = self._zone(request)
        if zone is None:
            return error(404, 7003, "Could not route to zone")
        wanted_type, wanted_name = request.arg("type"), request.arg("name")
        items = [self._public(r) for r in sorted(self.records.values(),
                                                 key=lambda r: r["_order"])
                 if r["_zone"] == zone["id"]
                 and (wanted_type is None or r["type"] == wanted_type)
                 and (wanted_name is None or r["name"] == wanted_name)]
        return self._page(request, items, 100)

    def _create(self, request: Request) -> Response:
        zone = self._zone(request)
        if zone is None:
            return error(404, 7003, "Could not route to zone")
        body = request.json() or {}
        problem = self._invalid(body, zone)
        if problem:
            return problem
        if any(r["_zone"] == zone["id"] and all(r.get(k) == body.get(k) for k in
                                                ("type", "name", "content"))
               for r in self.records.values()):
            return error(400, 81058, "An identical record already exists.")
        return Response(200, envelope(self._public(self._new_record(body, zone["id"]))))

    def _overwrite(self, request: Request) -> Response:
        record, zone = self.records.get(request.params["id"]), self._zone(request)
        if record is None or zone is None or record["_zone"] != zone["id"]:
            return error(404, 81044, "Record does not exist.")
        body = request.json() or {}
        problem = self._invalid(body, zone)
        if problem:
            return problem
        record.update(type=body["type"], name=body["name"], content=body["content"],
                      ttl=body.get("ttl", 1), proxied=bool(body.get("proxied", False)),
                      modified_on=iso_now(precise=True))
        record.pop("priority", None)
        if body["type"] == "MX":
            record["priority"] = body["priority"]
        return Response(200, envelope(self._public(record)))

    def _patch(self, request: Request) -> Response:
        record = self.records.get(request.params["id"])
        if record is None:
            return error(404, 81044, "Record does not exist.")
        body = request.json() or {}
        record.update({k: v for k, v in body.items()
                       if k in ("name", "content", "ttl", "proxied", "priority", "comment")})
        record["modified_on"] = iso_now(precise=True)
        return Response(200, envelope(self._public(record)))

    def _delete(self, request: Request) -> Response:
        if self.records.pop(request.params["id"], None) is None:
            return error(404, 81044, "Record does not exist.")
        return Response(200, envelope({"id": request.params["id"]}))

    def _invalid(self, body: dict[str, Any], zone: dict[str, Any]) -> Response | None:
        """Cloudflare's validation answer: 1004 "DNS Validation Error" with an error_chain."""
        name = str(body.get("name") or "").rstrip(".")
        if not all(body.get(field) for field in ("type", "name", "content")):
            reason = (9000, "DNS record type, name and content are required.")
        elif name != zone["name"] and not name.endswith("." + zone["name"]):
            reason = (9007, "Content for record is invalid. Name is outside the zone.")
        elif body["type"] == "MX" and not isinstance(body.get("priority"), int):
            reason = (9101, "Priority is required for MX records.")
        else:
            return None
        errors = [{"code": 1004, "message": "DNS Validation Error",
                   "error_chain": [{"code": reason[0], "message": reason[1]}]}]
        return Response(400, envelope(None, success=False, errors=errors))

    def _new_record(self, body: dict[str, Any], zone_id: str) -> dict[str, Any]:
        now = iso_now(precise=True)
        record = {"id": uuid.uuid4().hex, "name": body["name"].rstrip("."),
                  "type": body["type"], "content": body["content"],
                  "proxiable": body["type"] in ("A", "AAAA", "CNAME"),
                  "proxied": bool(body.get("proxied", False)), "ttl": body.get("ttl", 1),
                  "settings": {}, "meta": {}, "comment": body.get("comment"), "tags": [],
                  "created_on": now, "modified_on": now,
                  "_zone": zone_id, "_order": next(self._order)}
        if body["type"] == "MX":
            record["priority"] = body.get("priority")
        self.records[record["id"]] = record
        return record

    @staticmethod
    def _public(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if not k.startswith("_")}
