"""A stateful fake of Cloudflare API v4: zones looked up by name and their DNS records.

Shapes follow the API reference and cloudflare-python's generated types (Zone,
RecordResponse, V4PagePaginationArray): every answer is `{"success", "errors", "messages",
"result", "result_info"}`; records carry id, name (fully qualified), type, content,
proxiable, proxied, ttl, settings, meta, comment, tags, created_on, modified_on and, for MX,
priority. `max_per_page` caps page sizes so a small zone still spans several pages.
A bad token gets 403 with error 10000 "Authentication error"; so does a valid token that
lacks the permission for a write (`read_only_tokens`), as the real API answers both.

Behaviour that matters for a sync, as the real API has it:
- PUT "Overwrite DNS Record" replaces the whole record: fields it does not carry fall back
  to their defaults (`comment` null, `tags` []); PATCH "Update DNS Record" changes only the
  fields given (developers.cloudflare.com/api/resources/dns/subresources/records/methods/
  edit and …/update).
- `POST /zones/{id}/dns_records/batch` {deletes, patches, puts, posts} runs in one database
  transaction, always in the order deletes, patches, puts, posts (…/records/methods/batch);
  when one operation fails nothing is applied.
- A CNAME cannot share its name with A/AAAA/CNAME records (developers.cloudflare.com/dns/
  manage-dns-records/troubleshooting/records-with-same-name/): an A/AAAA next to a CNAME is
  400 code 81054 "A CNAME record with that host already exists.", a CNAME next to an
  A/AAAA/CNAME is 400 code 81053 "An A, AAAA, or CNAME record with that host already
  exists.".
- TXT content is stored exactly as sent (quoted or not); the dashboard asks for quotes.
"""
from __future__ import annotations

import copy
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

    def __init__(self, token: str = TOKEN, *, max_per_page: int = 5_000_000,
                 read_only_tokens: tuple[str, ...] = ()):
        super().__init__()
        self.token = token
        self.read_only_tokens = set(read_only_tokens)
        self.batches: list[dict[str, Any]] = []  # bodies of the batch requests served
        self.max_per_page = max_per_page
        self.zones: dict[str, dict[str, Any]] = {}
        self.records: dict[str, dict[str, Any]] = {}  # id -> record (with its zone id)
        self._order = itertools.count()
        r = self.route
        r("GET", r"/client/v4/zones", self._list_zones)
        r("GET", r"/client/v4/zones/(?P<zone>\w+)/dns_records", self._list_records)
        r("POST", r"/client/v4/zones/(?P<zone>\w+)/dns_records", self._create)
        r("POST", r"/client/v4/zones/(?P<zone>\w+)/dns_records/batch", self._batch)
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
                   priority: int | None = None, comment: str | None = None,
                   tags: list[str] | None = None) -> str:
        """Add a record to the zone named `zone`; `name` is fully qualified."""
        zone_id = self.zone_id(zone)
        record = self._new_record({"type": type, "name": name, "content": content, "ttl": ttl,
                                   "priority": priority, "comment": comment,
                                   "tags": tags or []}, zone_id)
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
        header = request.header("Authorization") or ""
        token = header.removeprefix("Bearer ")
        if token in self.read_only_tokens and request.method != "GET":
            return error(403, 10000, "Authentication error")
        if token != self.token and token not in self.read_only_tokens:
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
        conflict = self._cname_conflict(body, zone["id"])
        if conflict:
            return conflict
        return Response(200, envelope(self._public(self._new_record(body, zone["id"]))))

    def _overwrite(self, request: Request) -> Response:
        zone = self._zone(request)
        if zone is None:
            return error(404, 81044, "Record does not exist.")
        return self._put(zone, request.params["id"], request.json() or {})

    def _put(self, zone: dict[str, Any], record_id: str, body: dict[str, Any]) -> Response:
        record = self.records.get(record_id)
        if record is None or record["_zone"] != zone["id"]:
            return error(404, 81044, "Record does not exist.")
        problem = self._invalid(body, zone) or self._cname_conflict(body, zone["id"], record_id)
        if problem:
            return problem
        record.update(type=body["type"], name=body["name"].rstrip("."),
                      content=body["content"], ttl=body.get("ttl", 1),
                      proxied=bool(body.get("proxied", False)),
                      comment=body.get("comment"), tags=list(body.get("tags") or []),
                      modified_on=iso_now(precise=True))
        record.pop("priority", None)
        if body["type"] == "MX":
            record["priority"] = body["priority"]
        return Response(200, envelope(self._public(record)))

    def _patch(self, request: Request) -> Response:
        zone = self._zone(request)
        if zone is None:
            return error(404, 81044, "Record does not exist.")
        return self._patch_record(zone, request.params["id"], request.json() or {})

    def _patch_record(self, zone: dict[str, Any], record_id: str,
                      body: dict[str, Any]) -> Response:
        record = self.records.get(record_id)
        if record is None or record["_zone"] != zone["id"]:
            return error(404, 81044, "Record does not exist.")
        merged = {**self._public(record), **body}
        problem = self._invalid(merged, zone) or self._cname_conflict(merged, zone["id"],
                                                                       record_id)
        if problem:
            return problem
        record.update({k: v for k, v in body.items()
                       if k in ("type", "name", "content", "ttl", "proxied", "priority",
                                "comment", "tags")})
        record["name"] = record["name"].rstrip(".")
        record["modified_on"] = iso_now(precise=True)
        return Response(200, envelope(self._public(record)))

    def _batch(self, request: Request) -> Response:
        """All or nothing, in Cloudflare's order: deletes, patches, puts, posts."""
        zone = self._zone(request)
        if zone is None:
            return error(404, 7003, "Could not route to zone")
        body = request.json() or {}
        self.batches.append(body)
        saved = copy.deepcopy(self.records)
        result: dict[str, list[Any]] = {"deletes": [], "patches": [], "puts": [], "posts": []}
        steps = ([("deletes", item) for item in body.get("deletes") or []]
                 + [("patches", item) for item in body.get("patches") or []]
                 + [("puts", item) for item in body.get("puts") or []]
                 + [("posts", item) for item in body.get("posts") or []])
        for kind, item in steps:
            answer = self._batch_step(zone, kind, dict(item))
            if answer.status != 200:
                self.records = saved
                return answer
            result[kind].append(answer.body["result"])
        return Response(200, envelope(result))

    def _batch_step(self, zone: dict[str, Any], kind: str, item: dict[str, Any]) -> Response:
        if kind == "deletes":
            record = self.records.get(item.get("id"))
            if record is None or record["_zone"] != zone["id"]:
                return error(404, 81044, "Record does not exist.")
            return Response(200, envelope(self._public(self.records.pop(item["id"]))))
        if kind == "patches":
            return self._patch_record(zone, item.pop("id", ""), item)
        if kind == "puts":
            return self._put(zone, item.pop("id", ""), item)
        problem = self._invalid(item, zone) or self._cname_conflict(item, zone["id"])
        if problem:
            return problem
        return Response(200, envelope(self._public(self._new_record(item, zone["id"]))))

    def _cname_conflict(self, body: dict[str, Any], zone_id: str,
                        record_id: str | None = None) -> Response | None:
        """81053/81054: a CNAME and an A/AAAA/CNAME at the same name."""
        name = str(body.get("name") or "").rstrip(".")
        others = {r["type"] for r in self.records.values()
                  if r["_zone"] == zone_id and r["name"] == name and r["id"] != record_id}
        if body.get("type") == "CNAME" and others & {"A", "AAAA", "CNAME"}:
            return error(400, 81053, "An A, AAAA, or CNAME record with that host already "
                                     "exists.")
        if body.get("type") in ("A", "AAAA") and "CNAME" in others:
            return error(400, 81054, "A CNAME record with that host already exists.")
        return None

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
                  "settings": {}, "meta": {}, "comment": body.get("comment"),
                  "tags": list(body.get("tags") or []),
                  "created_on": now, "modified_on": now,
                  "_zone": zone_id, "_order": next(self._order)}
        if body["type"] == "MX":
            record["priority"] = body.get("priority")
        self.records[record["id"]] = record
        return record

    @staticmethod
    def _public(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if not k.startswith("_")}
