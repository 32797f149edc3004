"""Cloudflare DNS through API v4 (https://developers.cloudflare.com/api/).

Every answer is the envelope `{"success", "errors": [{"code", "message"}], "messages",
"result", "result_info": {page, per_page, count, total_count, total_pages}}`. The zone is
found by name (`GET /zones?name=`), its records are read page by page
(`GET /zones/{id}/dns_records?page=&per_page=`) and written one by one (POST to create,
PUT to overwrite, DELETE). Records are never proxied: mail and SSH need the real address.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from . import DnsError, HttpPolicy, send
from .records import DnsRecord, RecordChange, relative_name

__all__ = ["CloudflareDns"]

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
STATUS_PAGE = "https://www.cloudflarestatus.com"
AUTH_CODES = {6003, 6111, 9106, 9109, 10000, 10001}
TOKEN_HELP = ("Create an API token with Zone → Zone → Read and Zone → DNS → Edit for {domain} "
              "(Cloudflare dashboard → My Profile → API Tokens) and put it in the bot's "
              "configuration.")
MAX_PAGES = 1000


class CloudflareDns:
    """One Cloudflare zone."""

    label = "Cloudflare"

    def __init__(self, domain: str, token: str, *, base_url: str = DEFAULT_BASE_URL,
                 policy: HttpPolicy = HttpPolicy(), per_page: int = 100):
        self.domain = domain.rstrip(".").lower()
        self._policy = policy
        self._per_page = per_page
        self._zone_id: str | None = None
        self._client = httpx.AsyncClient(base_url=base_url,
                                         headers={"Authorization": f"Bearer {token}"},
                                         timeout=policy.timeout)

    async def __aenter__(self) -> CloudflareDns:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- reading ---------------------------------------------------------------------------

    async def zone_id(self) -> str:
        """The zone's id, looked up by name once."""
        if self._zone_id is None:
            body = await self._request("GET", "/zones", "looking up the zone",
                                       params={"name": self.domain})
            if not body.get("result"):
                raise DnsError(f"Cloudflare has no zone “{self.domain}” that this token can "
                               "see; add the domain to Cloudflare or include it in the "
                               "token's Zone Resources.")
            self._zone_id = body["result"][0]["id"]
        return self._zone_id

    async def list_records(self) -> list[DnsRecord]:
        """All records of the zone, following `result_info.total_pages`."""
        path = f"/zones/{await self.zone_id()}/dns_records"
        records: list[DnsRecord] = []
        for page in range(1, MAX_PAGES + 1):
            body = await self._request("GET", path, "listing DNS records",
                                       params={"page": page, "per_page": self._per_page})
            records += [self._record(raw) for raw in body.get("result") or []]
            info = body.get("result_info") or {}
            if page >= int(info.get("total_pages") or 1):
                break
        return records

    # -- writing ---------------------------------------------------------------------------

    async def create_record(self, record: DnsRecord) -> DnsRecord:
        path = f"/zones/{await self.zone_id()}/dns_records"
        body = await self._request("POST", path, f"creating {record.describe()}",
                                   json=self._payload(record))
        return self._record(body["result"])

    async def update_record(self, record_id: str, record: DnsRecord) -> DnsRecord:
        """Overwrite an existing record (PUT)."""
        path = f"/zones/{await self.zone_id()}/dns_records/{record_id}"
        body = await self._request("PUT", path, f"updating {record.describe()}",
                                   json=self._payload(record))
        return self._record(body["result"])

    async def delete_record(self, record: DnsRecord) -> None:
        path = f"/zones/{await self.zone_id()}/dns_records/{record.id}"
        await self._request("DELETE", path, f"removing stale {record.describe()}")

    async def apply(self, changes: Sequence[RecordChange]) -> None:
        """Create what is missing; overwrite the first record at a differing key and remove
        the stale rest of that key."""
        for change in changes:
            if change.action == "create" or not change.replaces:
                await self.create_record(change.record)
                continue
            first, *stale = change.replaces
            await self.update_record(first.id, change.record)
            for record in stale:
                await self.delete_record(record)

    # -- plumbing --------------------------------------------------------------------------

    def _record(self, raw: dict[str, Any]) -> DnsRecord:
        return DnsRecord(name=relative_name(raw["name"], self.domain), type=raw["type"],
                         content=raw.get("content", ""), ttl=raw.get("ttl", 1),
                         priority=raw.get("priority") if raw["type"] == "MX" else None,
                         id=raw.get("id"))

    def _payload(self, record: DnsRecord) -> dict[str, Any]:
        payload: dict[str, Any] = {"type": record.type, "name": record.fqdn(self.domain),
                                   "content": record.content, "ttl": record.ttl,
                                   "proxied": False}
        if record.priority is not None:
            payload["priority"] = record.priority
        return payload

    async def _request(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        response = await send(self._client, self.label, method, path, policy=self._policy,
                              what=what, **kwargs)
        body = _json(response)
        if response.is_success and body.get("success", True):
            return body
        raise DnsError(self._explain(response, body, what))

    def _explain(self, response: httpx.Response, body: dict[str, Any], what: str) -> str:
        errors = body.get("errors") or []
        codes = {e.get("code") for e in errors if isinstance(e, dict)}
        detail = "; ".join(f"{e.get('code')} {e.get('message')}" for e in errors
                           if isinstance(e, dict)) or f"HTTP {response.status_code}"
        status = response.status_code
        if status == 401 or codes & AUTH_CODES:
            return (f"Cloudflare rejected the API token ({detail}). "
                    + TOKEN_HELP.format(domain=self.domain))
        if status == 429:
            return (f"Cloudflare is rate limiting the bot while {what} ({detail}); "
                    "try again in a few minutes.")
        if status >= 500:
            return (f"Cloudflare failed while {what} (HTTP {status}: {detail}); "
                    f"check {STATUS_PAGE} and try again later.")
        if status == 403:
            return (f"Cloudflare refused {what}: {detail}. The token needs DNS → Edit for "
                    f"{self.domain}.")
        return f"Cloudflare refused {what}: {detail.rstrip('.')}."


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
