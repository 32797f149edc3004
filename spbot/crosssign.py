"""Moved to spbot.trust (own_identity, errors); this name stays only until spbot/matrix.py and
spbot/doctor.py import from there."""
from .trust.errors import CrossSigningError
from .trust.own_identity import CrossSigning, own_device_replaced

__all__ = ["CrossSigning", "CrossSigningError", "own_device_replaced"]
