"""A stateful fake of the deSEC DNS API (https://desec.readthedocs.io), domains and RRsets.

Shapes follow deSEC's documentation (docs/dns/domains.rst, docs/dns/rrsets.rst,
docs/rate-limits.rst) and its code (api/desecapi/pagination.py): RRsets are
`{"created", "domain", "subname", "name", "type", "records", "ttl", "touched"}`, newest
first. More than `page_size` of them need cursor pagination: without `?cursor=` the answer
is 400 with a `first` link, with it the page carries `Link: <…>; rel="first", <…>;
rel="prev", <…>; rel="next"`. Bulk POST/PUT/PATCH of RRset lists is atomic, validation
errors come back as a list with one object per item (`{}` for fine items), `records: []`
deletes. Errors are `{"detail": …}`; a throttled request gets 429 with `Retry-After`.

As deSEC's api/desecapi/serializers/records.py (RRsetListSerializer.validate) does:
- No RRset may sit next to a CNAME at the same subname. A bulk item that would is refused
  with `{"non_field_errors": ["RRset with conflicting type present: database (A). (No other
  RRsets are allowed alongside CNAME.)"]}` and, the request being atomic, nothing of it is
  written. RRsets sent with `records: []` in the same request are deleted first and do not
  count, so a CNAME can be replaced in one request.
- Record contents are stored in canonical presentation form
  (models.RR.canonical_presentation_format: dnspython from_text → wire → to_text): for TXT
  every string is quoted and every byte outside printable ASCII becomes `\\DDD`
  (dnspython's rdtypes/txtbase.py `_escapify`), so `"café"` is stored `"caf\\195\\169"`.
"""
from __future__ import annotations

import base64
import ipaddress
import itertools
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from . import Fault, FakeServer, Request, Response, iso_now

TOKEN = "desec-test-token"
MAX_TTL = 604800
_TXT = re.compile(r'^(?:"(?:[^"\\]|\\.){0,255}"\s*)+$')


class FakeDesec(FakeServer):
    """The fake API; `url` is the client's base URL (…/api/v1)."""

    def __init__(self, token: str = TOKEN, *, page_size: int = 500):
        super().__init__()
        self.token = token
        self.page_size = page_size
        self.domains: dict[str, dict[str, Any]] = {}
        self.rrsets: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self._order = itertools.count()
        r = self.route
        r("GET", r"/api/v1/domains/(?P<name>[^/]+)/", self._get_domain)
        r("GET", r"/api/v1/domains/(?P<name>[^/]+)/rrsets/", self._list)
        for method in ("POST", "PUT", "PATCH"):
            r(method, r"/api/v1/domains/(?P<name>[^/]+)/rrsets/", self._bulk)

    @property
    def url(self) -> str:
        return f"{self.base_url}/api/v1"

    # -- state for tests -------------------------------------------------------------------

    def add_domain(self, name: str, minimum_ttl: int = 3600) -> None:
        now = iso_now(precise=True)
        self.domains[name] = {
            "created": now, "published": now, "touched": now, "name": name,
            "minimum_ttl": minimum_ttl,
            "keys": [{"dnskey": "257 3 13 WFRl60LXSR7BczCDj1lrjbOHLg2PyV+7x0o2hErPy1jxPYvwWHm9",
                      "ds": ["6006 13 2 f34b75bd73d2b3c3d6f5f4f5cd0f0b2e3e5c0b6a7d5ce4fd3c6e9f7b8a9c0d1e"],
                      "flags": 257, "keytype": "csk"}],
        }
        self.rrsets[name] = {}

    def add_rrset(self, domain: str, subname: str, type: str, records: list[str],
                  ttl: int = 3600) -> None:
        self._store(domain, {"subname": subname, "type": type, "records": records, "ttl": ttl})

    def domain_rrsets(self, domain: str) -> list[dict[str, Any]]:
        return [self._public(r) for r in self._ordered(domain)]

    def throttle(self, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` requests 429, as deSEC's rate limiter does."""
        body = {"detail": f"Request was throttled. Expected available in {retry_after} seconds."}
        self.add_fault(Fault(429, body, headers={"Retry-After": str(retry_after)}, times=times))

    def fail(self, status: int, body: Any, times: int = 1, method: str | None = None,
             path: str | None = None) -> None:
        self.add_fault(Fault(status, body, times=times, method=method, path=path))

    # -- plumbing --------------------------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        header = request.header("Authorization")
        if header is None:
            return Response(401, {"detail": "Authentication credentials were not provided."})
        if header != f"Token {self.token}":
            return Response(401, {"detail": "Invalid token."})
        return None

    def not_found(self, request: Request) -> Response:
        return Response(404, {"detail": "Not found."})

    def _get_domain(self, request: Request) -> Response:
        domain = self.domains.get(request.params["name"])
        return Response(200, dict(domain)) if domain else self.not_found(request)

    # -- listing with cursor pagination ----------------------------------------------------

    def _list(self, request: Request) -> Response:
        name = request.params["name"]
        if name not in self.domains:
            return self.not_found(request)
        wanted_type, wanted_sub = request.arg("type"), request.arg("subname")
        items = [self._public(r) for r in self._ordered(name)
                 if (wanted_type is None or r["type"] == wanted_type)
                 and (wanted_sub is None or r["subname"] == wanted_sub)]
        if len(items) <= self.page_size:
            return Response(200, items)
        links = {"first": _with_cursor(request.url, "")}
        if "cursor" not in request.query:
            detail = (f"Pagination required. You can query up to {self.page_size} items at a "
                      f"time ({len(items)} total). Please use the `first` page link "
                      "(see Link header).")
            return Response(400, {"detail": detail}, {"Link": _link_header(links)})
        offset = _offset(request.arg("cursor") or "")
        if offset > 0:
            links["prev"] = _with_cursor(request.url,
                                         _cursor(max(0, offset - self.page_size)))
        if offset + self.page_size < len(items):
            links["next"] = _with_cursor(request.url, _cursor(offset + self.page_size))
        page = items[offset: offset + self.page_size]
        return Response(200, page, {"Link": _link_header(links)})

    # -- bulk writes -----------------------------------------------------------------------

    def _bulk(self, request: Request) -> Response:
        name = request.params["name"]
        if name not in self.domains:
            return self.not_found(request)
        body = request.json()
        if request.method != "POST" and not isinstance(body, list):
            return Response(400, {"non_field_errors": [
                f'Expected a list of items but got type "{type(body).__name__}".']})
        items = body if isinstance(body, list) else [body]
        errors = self._validate(name, request.method, items)
        if any(errors):
            return Response(400, errors if isinstance(body, list) else errors[0])
        saved = [self._write(name, request.method, item) for item in items]
        result = [self._public(r) for r in saved if r is not None]
        return Response(201 if request.method == "POST" else 200,
                        result if isinstance(body, list) else result[0])

    def _validate(self, domain: str, method: str, items: list[Any]) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        seen: dict[tuple[str, str], int] = {}
        for position, item in enumerate(items):
            problems = self._item_problems(domain, method, item)
            conflict = self._cname_conflict(domain, items, position)
            if conflict:
                problems.setdefault("non_field_errors", []).append(conflict)
            key = (item.get("subname", ""), item.get("type")) if isinstance(item, dict) else None
            if key in seen:
                problems.setdefault("non_field_errors", []).append(
                    f"Same subname and type as in position(s) {seen[key]}, but must be unique.")
            if key is not None:
                seen.setdefault(key, position)
            errors.append(problems)
        return errors

    def _item_problems(self, domain: str, method: str, item: Any) -> dict[str, list[str]]:
        if not isinstance(item, dict):
            return {"non_field_errors": ["Invalid data. Expected a dictionary."]}
        required = ("type",) if method == "PATCH" else ("type", "ttl", "records")
        problems = {f: ["This field is required."] for f in required if f not in item}
        if item.get("subname") == "@":
            problems["subname"] = ["Subname can only use (lowercase) a-z, 0-9, ., -, and _."]
        existing = self.rrsets[domain].get((item.get("subname", ""), item.get("type")))
        if method == "POST" and existing is not None:
            problems["non_field_errors"] = ["Another RRset with the same subdomain and type "
                                            "exists for this domain."]
        ttl = item.get("ttl")
        minimum = self.domains[domain]["minimum_ttl"]
        if ttl is not None and not minimum <= ttl <= MAX_TTL:
            bound = minimum if ttl < minimum else MAX_TTL
            word = "greater" if ttl < minimum else "less"
            problems["ttl"] = [f"Ensure this value is {word} than or equal to {bound}."]
        if method == "PATCH" and existing is None and item.get("records") and "ttl" not in item:
            problems["ttl"] = ["This field is required for new RRsets."]
        bad = [r for r in item.get("records") or [] if not _valid(item.get("type"), r)]
        if bad:
            problems["records"] = [f"Record content for type {item.get('type')} malformed: {r}"
                                   for r in bad]
        return problems

    def _cname_conflict(self, domain: str, items: list[Any], position: int) -> str | None:
        """deSEC's CNAME exclusivity over the database and the request (empty RRsets in the
        request are deletions and do not count)."""
        item = items[position]
        if not isinstance(item, dict) or item.get("records") == []:
            return None
        subname, rtype = item.get("subname", ""), item.get("type")
        deleted = {i.get("type") for i in items
                   if isinstance(i, dict) and i.get("subname", "") == subname
                   and i.get("records") == []}
        where: dict[str, list[str]] = {}
        for (sub, other), _ in self.rrsets[domain].items():
            if sub == subname and other not in deleted and (other == "CNAME") != (rtype == "CNAME"):
                where.setdefault("database", []).append(other)
        for index, other in enumerate(items):
            if (index != position and isinstance(other, dict)
                    and other.get("subname", "") == subname and other.get("records") != []
                    and (other.get("type") == "CNAME") != (rtype == "CNAME")):
                where.setdefault(str(index), []).append(str(other.get("type")))
        if not where:
            return None
        places = ", ".join(f"{place} ({', '.join(sorted(types))})"
                           for place, types in where.items())
        return (f"RRset with conflicting type present: {places}. "
                "(No other RRsets are allowed alongside CNAME.)")

    def _write(self, domain: str, method: str, item: dict[str, Any]) -> dict[str, Any] | None:
        key = (item.get("subname", ""), item["type"])
        if "records" in item and not item["records"]:
            self.rrsets[domain].pop(key, None)
            return None
        current = self.rrsets[domain].get(key)
        if method == "PATCH" and current is not None:
            merged = {**current, **{k: v for k, v in item.items() if k in ("ttl", "records")}}
            return self._store(domain, merged)
        return self._store(domain, item)

    def _store(self, domain: str, item: dict[str, Any]) -> dict[str, Any]:
        subname, record_type = item.get("subname", ""), item["type"]
        current = self.rrsets[domain].get((subname, record_type))
        rrset = {
            "created": current["created"] if current else iso_now(precise=True),
            "domain": domain, "subname": subname,
            "name": f"{subname}.{domain}." if subname else f"{domain}.",
            "type": record_type, "records": [_canonical(record_type, r) for r in item["records"]],
            "ttl": item["ttl"], "touched": iso_now(precise=True),
            "_order": current["_order"] if current else next(self._order),
        }
        self.rrsets[domain][(subname, record_type)] = rrset
        return rrset

    def _ordered(self, domain: str) -> list[dict[str, Any]]:
        return sorted(self.rrsets[domain].values(), key=lambda r: r["_order"], reverse=True)

    @staticmethod
    def _public(rrset: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in rrset.items() if not k.startswith("_")}


def _valid(record_type: str | None, record: str) -> bool:
    try:
        if record_type == "A":
            ipaddress.IPv4Address(record)
        elif record_type == "AAAA":
            ipaddress.IPv6Address(record)
        elif record_type == "MX":
            priority, _, host = record.partition(" ")
            return priority.isdigit() and host.endswith(".")
        elif record_type == "TXT":
            return _TXT.fullmatch(record) is not None
    except ValueError:
        return False
    return True


def _canonical(record_type: str, record: str) -> str:
    if record_type == "AAAA":
        return str(ipaddress.IPv6Address(record))
    if record_type == "TXT":
        return " ".join(f'"{_escapify(part)}"' for part in _txt_strings(record))
    return record


def _txt_strings(record: str) -> list[bytes]:
    """The character strings of a quoted TXT presentation (RFC 1035 §5.1 escapes)."""
    strings = []
    for quoted in re.findall(r'"((?:[^"\\]|\\.)*)"', record, re.DOTALL):
        raw = bytearray()
        index = 0
        while index < len(quoted):
            char = quoted[index]
            if char == "\\" and quoted[index + 1: index + 4].isdigit() \
                    and len(quoted[index + 1: index + 4]) == 3:
                raw.append(int(quoted[index + 1: index + 4]))
                index += 4
            elif char == "\\":
                raw += quoted[index + 1].encode()
                index += 2
            else:
                raw += char.encode()
                index += 1
        strings.append(bytes(raw))
    return strings


def _escapify(data: bytes) -> str:
    """dnspython's rdtypes/txtbase.py `_escapify`: printable ASCII as is, `"` and `\\`
    escaped, every other byte as `\\DDD`."""
    out = []
    for byte in data:
        if byte in b'"\\':
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)


def _cursor(offset: int) -> str:
    return base64.b64encode(f"o={offset}".encode()).decode()


def _offset(cursor: str) -> int:
    if not cursor:
        return 0
    return int(base64.b64decode(cursor).decode().removeprefix("o="))


def _with_cursor(url: str, cursor: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "cursor"]
    query.append(("cursor", cursor))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _link_header(links: dict[str, str]) -> str:
    return ", ".join(f'<{url}>; rel="{rel}"' for rel, url in links.items())
