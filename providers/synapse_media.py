"""The homeserver's media through Synapse's admin API: who and which rooms hold the most, and the purge of
the cache of other servers' media.

Shapes read in Synapse 1.163 (synapse/rest/admin/media.py, statistics.py, rooms.py) and checked against a
running Synapse in tests/test_matrix_media_chat.py:

    GET  /_synapse/admin/v1/statistics/users/media?order_by=media_length&dir=b&limit=
         {"users": [{"user_id", "displayname", "media_count", "media_length"}], "total", "next_token"?}
    GET  /_synapse/admin/v1/rooms?order_by=joined_members&dir=b&limit=&from=
         {"rooms": [{"room_id", "name", "canonical_alias", "joined_members", ...}], "total_rooms", ...}
    GET  /_synapse/admin/v1/room/<room_id>/media      {"local": [mxc...], "remote": [mxc...]}
         (only media of unencrypted events: the server cannot read encrypted ones)
    GET  /_synapse/admin/v1/media/<server>/<media_id>  {"media_info": {"media_length", ...}}
    POST /_synapse/admin/v1/purge_media_cache?before_ts=<ms>   {"deleted": n}
         removes cached remote media last accessed (or, never accessed, cached) before before_ts
    GET  /_synapse/admin/v1/statistics/database/rooms  {"rooms": [{"room_id", "estimated_size"}]}
         PostgreSQL only: 400 "Endpoint requires using PostgreSQL" on SQLite

Every failure is a `SynapseMediaError` with `what` (what went wrong, naming the homeserver) and `todo`
(what to do next); the access token never appears in one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import httpx

from .errors import ProviderError

__all__ = ["MediaApiError", "PostgresOnly", "RoomDatabaseSize", "RoomMedia", "SynapseMedia",
           "SynapseMediaError", "UserMedia"]

DEFAULT_TIMEOUT = 30.0
PURGE_TIMEOUT = 600.0           # a purge walks the whole cache: it may take minutes on a big server


class SynapseMediaError(ProviderError):
    """A media admin call failed: `what` went wrong, `todo` says what to do next."""

    def __init__(self, what: str, todo: str = "", *, status: int | None = None):
        super().__init__(what, todo)
        self.status = status


class MediaApiError(SynapseMediaError):
    """The homeserver did not answer, refused, or answered something unexpected."""


class PostgresOnly(SynapseMediaError):
    """The homeserver runs on SQLite: it cannot estimate rooms' database sizes."""


@dataclass(frozen=True)
class UserMedia:
    user_id: str
    displayname: str | None
    count: int
    bytes: int


@dataclass(frozen=True)
class RoomMedia:
    room_id: str
    name: str
    local: int            # media items uploaded here
    remote: int           # media items from other servers
    bytes: int            # of the items the server still has (local ones and the cached remote ones)


@dataclass(frozen=True)
class RoomDatabaseSize:
    room_id: str
    bytes: int


class SynapseMedia:
    """Synapse's media admin API with a homeserver admin's access token."""

    def __init__(self, homeserver_url: str, access_token: str, server_name: str,
                 timeout: float = DEFAULT_TIMEOUT, *, transport: httpx.AsyncBaseTransport | None = None):
        self.url = homeserver_url.rstrip("/")
        self.server_name = server_name
        self.timeout = timeout
        self._token = access_token
        import httpx                 # loaded with the first client, not with the command modules
        self._client = httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(timeout), follow_redirects=False,
                                         headers={"Authorization": f"Bearer {access_token}"}, transport=transport)

    async def __aenter__(self) -> SynapseMedia:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._client.aclose()

    @property
    def where(self) -> str:
        return f"the homeserver {self.server_name} ({self.url})"

    async def users_by_media(self, limit: int = 5) -> list[UserMedia]:
        """The local users who uploaded the most, biggest first."""
        data = await self._request("GET", "/_synapse/admin/v1/statistics/users/media", "listing media by user",
                                   params={"order_by": "media_length", "dir": "b", "limit": limit})
        return [UserMedia(str(u["user_id"]), u.get("displayname"), int(u.get("media_count") or 0),
                          int(u.get("media_length") or 0)) for u in data.get("users", [])]

    async def rooms_by_media(self, limit: int = 5, max_rooms: int = 100, max_lookups: int = 1000) -> list[RoomMedia]:
        """The rooms holding the most media (of their unencrypted events), biggest first. Looks at the
        `max_rooms` most populated rooms and sizes at most `max_lookups` media items (a bounded walk)."""
        rooms = await self._request("GET", "/_synapse/admin/v1/rooms", "listing rooms",
                                    params={"order_by": "joined_members", "dir": "b", "limit": max_rooms})
        found, lookups = [], 0
        for room in rooms.get("rooms", []):
            room_id = str(room["room_id"])
            media = await self._request("GET", f"/_synapse/admin/v1/room/{_q(room_id)}/media",
                                        "listing a room's media")
            local, remote = list(media.get("local", [])), list(media.get("remote", []))
            if not local and not remote:
                continue
            size = 0
            for mxc in (local + remote)[:max(0, max_lookups - lookups)]:
                lookups += 1
                size += await self._length(mxc)
            name = room.get("name") or room.get("canonical_alias") or room_id
            found.append(RoomMedia(room_id, str(name), len(local), len(remote), size))
        found.sort(key=lambda r: (-r.bytes, -(r.local + r.remote), r.room_id))
        return found[:limit]

    async def _length(self, mxc: str) -> int:
        origin, _, media_id = mxc.removeprefix("mxc://").partition("/")
        if not origin or not media_id:
            return 0
        try:
            data = await self._request("GET", f"/_synapse/admin/v1/media/{_q(origin)}/{_q(media_id)}",
                                       "looking up a media item")
        except MediaApiError as exc:
            if exc.status == 404:        # a remote item no longer cached, or deleted
                return 0
            raise
        return int((data.get("media_info") or {}).get("media_length") or 0)

    async def purge_remote_cache(self, older_than_days: float, now: float | None = None) -> int:
        """Delete the cached copies of other servers' media not used for `older_than_days`; the count."""
        before_ms = int(((time.time() if now is None else now) - older_than_days * 86400) * 1000)
        data = await self._request("POST", "/_synapse/admin/v1/purge_media_cache", "purging cached remote media",
                                   params={"before_ts": before_ms}, json={}, timeout=PURGE_TIMEOUT)
        return int(data.get("deleted") or 0)

    async def database_rooms(self) -> list[RoomDatabaseSize]:
        """The rooms taking the most database space (a rough PostgreSQL estimate), biggest first."""
        try:
            data = await self._request("GET", "/_synapse/admin/v1/statistics/database/rooms",
                                       "estimating rooms' database sizes")
        except MediaApiError as exc:
            if exc.status == 400 and "PostgreSQL" in exc.what:
                raise PostgresOnly(f"{_cap(self.where)} runs on SQLite: it estimates rooms' database sizes "
                                   "only on PostgreSQL.", status=400) from None
            raise
        rooms = [RoomDatabaseSize(str(r["room_id"]), int(r.get("estimated_size") or 0)) for r in data.get("rooms", [])]
        return sorted(rooms, key=lambda r: -r.bytes)

    async def _request(self, method: str, path: str, doing: str, *, params: dict[str, Any] | None = None,
                       json: dict[str, Any] | None = None, timeout: float | None = None) -> dict[str, Any]:
        import httpx                 # loaded with the first client, not with the command modules
        try:
            response = await self._client.request(method, path, params=params, json=json,
                                                   timeout=httpx.Timeout(timeout or self.timeout))
        except httpx.TimeoutException:
            raise MediaApiError(f"{_cap(self.where)} did not answer in time while {doing}.",
                                "Synapse may be restarting or busy; try again in a few minutes.") from None
        except httpx.HTTPError as error:
            reason = f"{type(error).__name__}: {error}".replace(self._token, "[hidden]")
            raise MediaApiError(f"Could not reach {self.where} while {doing} ({reason}).",
                                "Check that Synapse runs: !service synapse.") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict):
            return body
        said = str(body.get("error") or "")[:200].replace(self._token, "[hidden]") if isinstance(body, dict) else ""
        status = response.status_code
        if status in (401, 403):
            raise MediaApiError(f"{_cap(self.where)} refused {doing} (HTTP {status}{': ' + said if said else ''}).",
                                "The bot's account must be a homeserver admin (see !user in the README).",
                                status=status)
        raise MediaApiError(f"{_cap(self.where)} answered HTTP {status} while {doing}"
                            f"{' (' + said + ')' if said else ''}.",
                            "Check Synapse's log: !service logs synapse.", status=status)


def _q(value: str) -> str:
    return quote(value, safe="")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
