"""Cloudflare DNS through API v4 (https://developers.cloudflare.com/api/).

Every answer is the envelope `{"success", "errors": [{"code", "message"}], "messages",
"result", "result_info": {page, per_page, count, total_count, total_pages}}`. The zone is
found by name (`GET /zones?name=`), its records are read page by page
(`GET /zones/{id}/dns_records?page=&per_page=`). A sync is one
`POST /zones/{id}/dns_records/batch` ({deletes, patches, puts, posts}, run by Cloudflare in
one database transaction, in that order): either every change lands or none does, and a
CNAME can be deleted and replaced by A/AAAA in the same call. Existing records are changed
by PATCH, which keeps the `comment` and `tags` a person set (PUT would wipe them).
TXT content is sent quoted, as Cloudflare's API and dashboard ask. Records are never
proxied: mail and SSH need the real address.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from . import DnsError, HttpPolicy, send
from .records import DnsRecord, RecordChange, quote_txt, relative_name

__all__ = ["CloudflareDns"]

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
STATUS_PAGE = "https://www.cloudflarestatus.com"
AUTH_CODES = {6003, 6111, 9106, 9109, 10001}
# 10000 "Authentication error" is also what a valid token without the needed permission gets
PERMISSION_CODE = 10000
CNAME_CODES = {81053, 81054}  # "An A, AAAA, or CNAME record with that host already exists."
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

    async def apply(self, changes: Sequence[RecordChange]) -> None:
        """Everything in one batch: create what is missing, PATCH the first record at a
        differing key and delete the stale rest of that key, delete a conflicting CNAME
        and create its replacement."""
        if not changes:
            return
        path = f"/zones/{await self.zone_id()}/dns_records/batch"
        await self._request("POST", path, f"writing {len(changes)} change(s)",
                            json=self._batch(changes))

    def _batch(self, changes: Sequence[RecordChange]) -> dict[str, list[dict[str, Any]]]:
        deletes: dict[str, None] = {}
        patches, posts = [], []
        for change in changes:
            if change.action == "replace":
                deletes.update((r.id, None) for r in change.replaces if r.id)
                posts.append(self._payload(change.record))
            elif change.action == "create" or not change.replaces:
                posts.append(self._payload(change.record))
            else:
                first, *stale = change.replaces
                patches.append({"id": first.id, **self._payload(change.record)})
                deletes.update((r.id, None) for r in stale if r.id)
        batch: dict[str, list[dict[str, Any]]] = {}
        if deletes:
            batch["deletes"] = [{"id": i} for i in deletes]
        if patches:
            batch["patches"] = patches
        if posts:
            batch["posts"] = posts
        return batch

    # -- plumbing --------------------------------------------------------------------------

    def _record(self, raw: dict[str, Any]) -> DnsRecord:
        return DnsRecord(name=relative_name(raw["name"], self.domain), type=raw["type"],
                         content=raw.get("content", ""), ttl=raw.get("ttl", 1),
                         priority=raw.get("priority") if raw["type"] == "MX" else None,
                         id=raw.get("id"))

    def _payload(self, record: DnsRecord) -> dict[str, Any]:
        content = (quote_txt(record.content, escape_bytes=False) if record.type == "TXT"
                   else record.content)
        payload: dict[str, Any] = {"type": record.type, "name": record.fqdn(self.domain),
                                   "content": content, "ttl": record.ttl, "proxied": False}
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
        if PERMISSION_CODE in codes:
            return (f"Cloudflare refused {what} ({detail}): the token is wrong, or it lacks a "
                    "permission this needs. " + TOKEN_HELP.format(domain=self.domain))
        if codes & CNAME_CODES:
            return (f"Cloudflare refused {what} ({detail}): a CNAME cannot share its name with "
                    "other records. Nothing was changed; send !dns check to see the conflict.")
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
