"""What can go wrong with cross-signing: every message says what happened and what to do, and never holds
a secret (seeds, access token, password)."""
from __future__ import annotations


class CrossSigningError(Exception):
    """Something went wrong; the message says what and what to do, and never holds a secret."""


class HomeserverError(CrossSigningError):
    """The homeserver answered with an error (or not at all)."""

    def __init__(self, message: str, status: int | None = None, errcode: str | None = None,
                 soft_logout: bool = False):
        super().__init__(message)
        self.status, self.errcode = status, errcode
        self.soft_logout = soft_logout      # the token expired, the device is kept: log in again as it


class AuthRequired(CrossSigningError):
    """The operation needs user-interactive auth that this library cannot do (no password given, or the
    homeserver offers no password flow, e.g. with delegated auth: `url` then says where to approve)."""

    def __init__(self, message: str, url: str | None = None):
        super().__init__(message)
        self.url = url


class AuthFailed(CrossSigningError):
    """The homeserver refused the password."""


class DeviceKeysUnavailable(CrossSigningError):
    """The homeserver has no device keys for the bot's device yet (call after nio's first keys upload)."""


class DeviceKeysMismatch(CrossSigningError):
    """The homeserver's copy of the device's keys differs from the local crypto store: not signed."""


class StateFileError(CrossSigningError):
    """`cross_signing.json` is unreadable, inconsistent or belongs to another account."""
