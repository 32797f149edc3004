"""deSEC DNS through its REST API (https://desec.readthedocs.io/en/latest/dns/rrsets.html).

deSEC speaks in RRsets: `{"subname", "type", "ttl", "records": [...], "name", "domain",
"created", "touched"}` with records in zone-file form (MX `10 mx.example.org.`, TXT quoted).
Listing starts with `?cursor=` and follows the `Link: <...>; rel="next"` header; writes go
as one atomic bulk PATCH of whole RRsets. Throttled requests (429) carry `Retry-After`.

deSEC refuses any RRset next to a CNAME at the same subname, and with it the whole bulk
request (api/desecapi/serializers/records.py: "RRset with conflicting type present …
(No other RRsets are allowed alongside CNAME.)"); an RRset with `records: []` in the same
request deletes first, so a CNAME is replaced by sending it empty next to the new RRsets.
TXT values come back in dnspython's canonical form (non-ASCII bytes as `\\DDD`); see
records.unquote_txt.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from . import DnsError, HttpPolicy, send
from .records import DnsRecord, RecordChange, quote_txt

__all__ = ["DesecDns"]

DEFAULT_BASE_URL = "https://desec.io/api/v1"
TOKEN_HELP = ("Create a new token at https://desec.io (Token management) and put it in the "
              "bot's configuration.")
MAX_PAGES = 1000


class DesecDns:
    """One deSEC domain."""

    label = "deSEC"

    def __init__(self, domain: str, token: str, *, base_url: str = DEFAULT_BASE_URL,
                 policy: HttpPolicy = HttpPolicy()):
        self.domain = domain.rstrip(".").lower()
        self._policy = policy
        self._minimum_ttl: int | None = None
        self._client = httpx.AsyncClient(base_url=base_url,
                                         headers={"Authorization": f"Token {token}"},
                                         timeout=policy.timeout)

    async def __aenter__(self) -> DesecDns:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- reading ---------------------------------------------------------------------------

    async def minimum_ttl(self) -> int:
        """The smallest TTL deSEC accepts for this domain."""
        if self._minimum_ttl is None:
            response = await self._request("GET", f"/domains/{self.domain}/",
                                           "reading the domain")
            self._minimum_ttl = int(response.json().get("minimum_ttl") or 3600)
        return self._minimum_ttl

    async def list_records(self) -> list[DnsRecord]:
        """All records of the domain, page after page via the Link header's `next`."""
        url: str | None = f"/domains/{self.domain}/rrsets/"
        params: dict[str, str] | None = {"cursor": ""}
        records: list[DnsRecord] = []
        for _ in range(MAX_PAGES):
            if url is None:
                break
            response = await self._request("GET", url, "listing DNS records", params=params)
            for rrset in response.json():
                records += _records_of(rrset)
            url, params = self._next_page(response), None
        return records

    def _next_page(self, response: httpx.Response) -> str | None:
        """The `next` link, only if it stays on deSEC's host (it will carry the token)."""
        link = response.links.get("next", {}).get("url")
        if link is None:
            return None
        if httpx.URL(link).host != self._client.base_url.host:
            raise DnsError(f"deSEC sent a next-page link to another host ({httpx.URL(link).host}); "
                           "refusing to follow it. Check the configured deSEC API address.")
        return link

    # -- writing ---------------------------------------------------------------------------

    async def apply(self, changes: Sequence[RecordChange]) -> None:
        """Write every touched RRset in one atomic bulk PATCH."""
        if not changes:
            return
        minimum = await self.minimum_ttl()
        rrsets = _rrsets_for(changes, minimum)
        await self._request("PATCH", f"/domains/{self.domain}/rrsets/",
                            f"updating {len(rrsets)} RRsets", json=rrsets, idempotent=True)

    # -- plumbing --------------------------------------------------------------------------

    async def _request(self, method: str, url: str, what: str, *,
                       idempotent: bool | None = None, **kwargs: Any) -> httpx.Response:
        response = await send(self._client, self.label, method, url, policy=self._policy,
                              what=what, idempotent=idempotent, **kwargs)
        if response.is_success:
            return response
        raise DnsError(self._explain(response, what))

    def _explain(self, response: httpx.Response, what: str) -> str:
        detail = _detail(response)
        status = response.status_code
        if status == 401:
            return f"deSEC rejected the API token ({detail}). {TOKEN_HELP}"
        if status == 404:
            return (f"deSEC has no domain “{self.domain}” in this account ({detail}); check the "
                    "domain in the bot's configuration.")
        if status == 429:
            wait = response.headers.get("Retry-After", "?")
            return (f"deSEC is still throttling the bot while {what} ({detail}); "
                    f"try again in {wait} s.")
        if status >= 500:
            return (f"deSEC failed while {what} (HTTP {status}); check https://desec.io and "
                    "try again later.")
        if status == 403:
            return f"deSEC refused {what}: {detail}. The token may not manage {self.domain}."
        return f"deSEC refused {what}: {detail.rstrip('.')}."


def _records_of(rrset: dict[str, Any]) -> list[DnsRecord]:
    """The single records of one RRset, in normal form (MX priority split off)."""
    name = rrset.get("subname") or "@"
    records = []
    for value in rrset.get("records", []):
        priority = None
        if rrset["type"] == "MX":
            first, _, value = value.partition(" ")
            priority = int(first)
        records.append(DnsRecord(name=name, type=rrset["type"], content=value,
                                 ttl=rrset.get("ttl", 3600), priority=priority))
    return records


def _rrsets_for(changes: Sequence[RecordChange], minimum_ttl: int) -> list[dict[str, Any]]:
    """Whole RRsets for the changes: the records we want plus foreign ones that stay."""
    grouped: dict[tuple[str, str], list[RecordChange]] = {}
    for change in changes:
        grouped.setdefault((change.record.name, change.record.type), []).append(change)
    rrsets = [{"subname": "" if name == "@" else name, "type": "CNAME", "records": []}
              for name in dict.fromkeys(c.record.name for c in changes
                                        if c.action == "replace")]
    for (name, record_type), group in grouped.items():
        ours = {c.record.key for c in group}
        keep = {r.key + (r.content,): r for c in group for r in c.keeps if r.key not in ours}
        wanted = [c.record for c in group] + list(keep.values())
        rrsets.append({"subname": "" if name == "@" else name, "type": record_type,
                       "ttl": max(minimum_ttl, group[0].record.ttl),
                       "records": [_presentation(r) for r in wanted]})
    return rrsets


def _presentation(record: DnsRecord) -> str:
    """A record value the way deSEC wants it (zone-file form)."""
    if record.type == "TXT":
        return quote_txt(record.content)
    if record.type in ("MX", "CNAME", "NS", "PTR"):
        host = record.content.rstrip(".") + "."
        return f"{record.priority} {host}" if record.type == "MX" else host
    return record.content


def _detail(response: httpx.Response) -> str:
    """deSEC's error body: {"detail": ...}, field errors, or a list of them for bulk writes."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    if isinstance(body, list):
        parts = [f"RRset {i + 1}: {_fields(item)}" for i, item in enumerate(body)
                 if isinstance(item, dict) and item]
        return "; ".join(parts) or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        return _fields(body)
    return f"HTTP {response.status_code}"


def _fields(errors: dict[str, Any]) -> str:
    return ", ".join(f"{field}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
                     for field, v in errors.items())
