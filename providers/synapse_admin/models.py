"""Synapse's answers as plain values: accounts, registration tokens (invites), sessions."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


def _time(value: Any) -> datetime | None:
    """Synapse timestamps: ms in most places, seconds in older `creation_ts`."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    seconds = value / 1000 if value > 10**11 else value
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


@dataclass(frozen=True)
class HomeserverUser:
    """One account as the admin API lists it."""

    user_id: str
    displayname: str | None = None
    admin: bool = False
    deactivated: bool = False
    erased: bool = False
    locked: bool = False
    guest: bool = False
    user_type: str | None = None
    created: datetime | None = None
    last_seen: datetime | None = None  # None: never seen, or not yet flushed by Synapse

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> HomeserverUser:
        return cls(
            user_id=str(data["name"]),
            displayname=data.get("displayname"),
            admin=bool(data.get("admin")),
            deactivated=bool(data.get("deactivated")),
            erased=bool(data.get("erased")),
            locked=bool(data.get("locked")),
            guest=bool(data.get("is_guest")),
            user_type=data.get("user_type"),
            created=_time(data.get("creation_ts")),
            last_seen=_time(data.get("last_seen_ts")),
        )


@dataclass(frozen=True)
class RegistrationToken:
    """An invite: a token that lets someone register an account themselves."""

    token: str
    uses_allowed: int | None  # None: unlimited
    pending: int = 0          # registrations in progress with this token
    completed: int = 0
    expires: datetime | None = None

    @property
    def uses_left(self) -> int | None:
        if self.uses_allowed is None:
            return None
        return max(self.uses_allowed - self.pending - self.completed, 0)

    def is_valid(self, now: datetime | None = None) -> bool:
        """Synapse's rule: uses left and not expired."""
        now = now or datetime.now(timezone.utc)
        if self.expires is not None and self.expires <= now:
            return False
        return self.uses_left is None or self.uses_left > 0

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> RegistrationToken:
        return cls(token=str(data["token"]), uses_allowed=data.get("uses_allowed"),
                   pending=int(data.get("pending") or 0),
                   completed=int(data.get("completed") or 0),
                   expires=_time(data.get("expiry_time")))


@dataclass(frozen=True)
class NewAccount:
    """What `add_user` made: the account and its generated password (show it once, E2EE)."""

    user: HomeserverUser
    password: str = field(repr=False)


@dataclass(frozen=True)
class Connection:
    ip: str | None
    user_agent: str | None
    last_seen: datetime | None


@dataclass(frozen=True)
class Whois:
    """Where an account has been connecting from (admin API /whois)."""

    user_id: str
    connections: list[Connection] = field(default_factory=list)

    @property
    def last_seen(self) -> datetime | None:
        seen = [c.last_seen for c in self.connections if c.last_seen is not None]
        return max(seen) if seen else None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Whois:
        connections = []
        for device in (data.get("devices") or {}).values():
            for session in device.get("sessions") or []:
                for c in session.get("connections") or []:
                    connections.append(Connection(c.get("ip"), c.get("user_agent"),
                                                  _time(c.get("last_seen"))))
        connections.sort(key=lambda c: c.last_seen or datetime.min.replace(tzinfo=timezone.utc),
                         reverse=True)
        return cls(user_id=str(data.get("user_id")), connections=connections)
