"""Moved to spbot.trust.devices; this name stays only until spbot/bot.py imports from there."""
from .trust.devices import Devices

__all__ = ["Devices"]
