"""DNS ([dns]): the records the server needs against the zone at Cloudflare or deSEC, the sync, and
the scheduled drift check."""
from __future__ import annotations

from .feature import DnsFeature

__all__ = ["DnsFeature"]
