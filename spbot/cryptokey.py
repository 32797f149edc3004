"""Moved to spbot.trust.pickle_key; this name stays only until spbot/matrix.py imports from there."""
from .trust.pickle_key import CryptoKeyError, ready_pickle_key

__all__ = ["CryptoKeyError", "ready_pickle_key"]
