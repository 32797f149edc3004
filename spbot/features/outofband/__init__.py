"""Reaching the admins when Matrix cannot: critical alerts through Apprise (e-mail, ntfy, Gotify, …)
when the room stays unreachable past a grace time, the homeserver's own outage announced there, and a
catch-up note in the room once it is back."""
from .feature import OutOfBandFeature
from .settings import OutOfBandSettings

__all__ = ["OutOfBandFeature", "OutOfBandSettings"]
