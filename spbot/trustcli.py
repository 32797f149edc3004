"""Moved to spbot.trust.cli; this name stays only until spbot/cli.py imports from there."""
from .trust.cli import accept, reset

__all__ = ["accept", "reset"]
