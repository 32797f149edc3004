"""When an event was sent, on this machine's clock.

An event's `origin_server_ts` is the sending homeserver's clock. A bot whose clock is off from it (a box
without a real-time clock after a power cut, a fleet bot whose admins' homeserver drifts) would take every
fresh command for one sent long ago ("sent while I was offline", forever), or an old one for fresh. The
homeserver also says how long ago the event was sent as it serves it (`unsigned.age`, measured on its own
clock alone): now minus that age is right however far the clocks are apart."""
from __future__ import annotations

from typing import Any


def sent_at(source: dict[str, Any], now: float) -> float | None:
    """`now` minus the age the homeserver gave the event (seconds); None when it gave none."""
    unsigned = source.get("unsigned")
    age = unsigned.get("age") if isinstance(unsigned, dict) else None
    if not isinstance(age, (int, float)) or isinstance(age, bool) or age < 0:
        return None
    return now - age / 1000


def sent_at_or_stamp(source: dict[str, Any], server_timestamp: int, now: float) -> float:
    """As sent_at, else the sender's homeserver's timestamp (seconds)."""
    when = sent_at(source, now)
    return when if when is not None else server_timestamp / 1000
