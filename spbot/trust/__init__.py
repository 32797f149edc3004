"""Trust: who may speak to the bot, and the bot's own identity.

    signing       canonical JSON, Ed25519 keys and signatures, fingerprints (pure)
    errors        what can go wrong with cross-signing (CrossSigningError and its kinds)
    homeserver    the client-server API calls: requests, /keys/query, user-interactive auth
    identities    other users' (the admins') cross-signing identities, every signature checked here
    own_keys      the bot's own cross-signing keys at rest (cross_signing.json, 0600)
    own_identity  the bot's own identity: create, check, reset it and sign its device (CrossSigning)
    own_device    at start: set up the bot's device and tell the room what went wrong or changed
    pins          trust on first use of each admin's identity (IdentityPins)
    devices       which device sent a command, and announcing new or unbound ones
    service       Trust: may this sender's device give commands and votes? accepting a new identity
    pickle_key    the crypto store's own pickle key
    cli           `spbot trust accept` and `spbot trust reset` at the server's console
"""
from .devices import Devices, key_label
from .errors import CrossSigningError
from .identities import UserIdentity, query_identity
from .own_identity import CrossSigning, CrossSigningStatus
from .pins import IdentityPins, KeyMoved
from .service import DeviceVerdict, Trust
from .signing import format_fingerprint

__all__ = ["CrossSigning", "CrossSigningError", "CrossSigningStatus", "DeviceVerdict", "Devices", "IdentityPins",
           "KeyMoved", "Trust", "UserIdentity", "format_fingerprint", "key_label", "query_identity"]
