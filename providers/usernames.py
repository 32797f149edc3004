"""Validation of a new account's user name, before anything is asked of the homeserver.

The rules are SelfPrivacy's (selfprivacy_api `create_user` / `is_username_forbidden`), so
the same name can later exist on the server's other services too:

- lowercase letters, digits and `_` only, starting with a letter, 2 to 31 characters
  (SelfPrivacy: `^[a-z_][a-z0-9_]+$` and `len < 32`; the leading `_` it allows is refused
  here because Synapse refuses localparts that begin with `_`);
- not a system account or service name (root, nginx, postgres, …), not starting with
  `systemd` or `nixbld`, and not the bot's own name.

    from spbot.providers.usernames import UsernameError, validate_username
    try:
        localpart = validate_username(raw, bot_localpart="spbot")
    except UsernameError as error:
        return reply(str(error))              # chat-ready: says which rule failed

`UsernameError` is a `ValueError`; its message is one sentence or two, ready for chat.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import ProviderError

__all__ = ["MAX_LENGTH", "MIN_LENGTH", "RESERVED", "RESERVED_PREFIXES", "UsernameError",
           "is_reserved", "validate_username"]

MIN_LENGTH = 2
MAX_LENGTH = 31  # SelfPrivacy: "must be less than 32 characters"
ALLOWED = re.compile(r"[a-z][a-z0-9_]*")
SEPARATORS = re.compile(r"[-.\s]+")

RESERVED_PREFIXES = ("systemd", "nixbld")

# System accounts of a Debian/NixOS server, the services SelfPrivacy runs, the names mail
# and web conventions keep for their operators, and the Matrix homeserver's own names.
# Names with "-" cannot pass the character rule anyway; their "_" forms are listed instead.
RESERVED = frozenset({
    # administrators and mail/web role addresses (RFC 2142 and friends)
    "root", "admin", "administrator", "postmaster", "abuse", "hostmaster", "webmaster",
    "www", "www_data", "mail", "security", "noreply", "no_reply",
    # Debian base system
    "nobody", "nogroup", "daemon", "bin", "sys", "sync", "games", "man", "lp", "news",
    "uucp", "proxy", "backup", "list", "irc", "gnats", "messagebus", "sshd", "polkituser",
    "systemd", "nixbld",
    # services SelfPrivacy runs (selfprivacy_api.utils.is_username_forbidden)
    "nginx", "redis", "postgres", "postgresql", "postfix", "dovecot", "dovecot2", "dovenull",
    "prosody", "opendkim", "rspamd", "restic", "ocserv", "memcached", "knot_resolver",
    "gitea", "forgejo", "nextcloud", "bitwarden", "bitwarden_rs", "vaultwarden", "pleroma",
    "acme", "virtualmail", "selfprivacy", "selfprivacy_api", "jitsi", "ocis",
    # the Matrix homeserver
    "matrix", "synapse", "matrix_synapse", "mautrix",
})


class UsernameError(ProviderError, ValueError):
    """A user name breaks a rule; the message says which one, ready to post in chat."""

    todo = "Names: 2–31 characters, lowercase a–z, 0–9 and _, starting with a letter."


def _localpart(name: str) -> str:
    """`@spbot:example.org` → `spbot`; a bare name stays as it is."""
    name = name.strip()
    if name.startswith("@"):
        name = name[1:].split(":", 1)[0]
    return name.lower()


def is_reserved(localpart: str, *, bot_localpart: str | None = None,
                extra_reserved: Iterable[str] = ()) -> bool:
    """True if the name belongs to the system, a service or the bot."""
    name = localpart.lower()
    reserved = RESERVED | {_localpart(n) for n in extra_reserved}
    if bot_localpart:
        reserved = reserved | {_localpart(bot_localpart)}
    return name in reserved or name.startswith(RESERVED_PREFIXES)


def validate_username(name: str, *, bot_localpart: str | None = None,
                      extra_reserved: Iterable[str] = ()) -> str:
    """The localpart for a new account, or `UsernameError` naming the rule that failed.

    `bot_localpart` may be the bot's localpart or its full user ID; `extra_reserved` adds
    names a deployment wants to keep (e.g. the configured admins' service accounts).
    """
    raw = name
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise UsernameError("No user name given. Use lowercase letters, digits and _, "
                            "e.g. alice or bob_smith.")
    shown = _quote(raw.strip())
    if name.startswith("@") or ":" in name:
        bare = _localpart(name)
        raise UsernameError(f"Give just the name, without @ or the server: "
                            f"“{bare}” rather than {shown}.")
    if len(name) > MAX_LENGTH:
        raise UsernameError(f"{shown} is {len(name)} characters long; user names may have "
                            f"at most {MAX_LENGTH}.")
    if len(name) < MIN_LENGTH:
        raise UsernameError(f"{shown} is too short; user names need at least "
                            f"{MIN_LENGTH} characters.")
    if name != name.lower():
        raise UsernameError(f"User names are lowercase: {shown} has capital letters"
                            + _suggest(SEPARATORS.sub("_", name.lower())) + ".")
    if not name[0].isascii() or not name[0].isalpha():
        what = "an underscore" if name[0] == "_" else "a digit" if name[0].isdigit() else \
            f"“{name[0]}”"
        raise UsernameError(f"User names must start with a letter (a–z); {shown} starts "
                            f"with {what}.")
    if not ALLOWED.fullmatch(name):
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c == "_"))})
        listed = " ".join("a space" if c == " " else f"“{c}”" if c.isprintable()
                          else f"U+{ord(c):04X}" for c in bad)
        raise UsernameError(f"User names may contain only a–z, 0–9 and _; {shown} has "
                            f"{listed}" + _suggest(SEPARATORS.sub("_", name)) + ".")
    if bot_localpart and name == _localpart(bot_localpart):
        raise UsernameError(f"{shown} is the bot's own account; choose another name.")
    if is_reserved(name, extra_reserved=extra_reserved):
        if name.startswith(RESERVED_PREFIXES) and name not in RESERVED:
            prefix = next(p for p in RESERVED_PREFIXES if name.startswith(p))
            raise UsernameError(f"Names starting with “{prefix}” are kept for system "
                                f"accounts; choose another name than {shown}.")
        raise UsernameError(f"{shown} is reserved for the system or one of its services; "
                            "choose another name.")
    return name


def _suggest(candidate: str) -> str:
    """`; try “x”` when the fixed-up name would itself be valid, else nothing."""
    if MIN_LENGTH <= len(candidate) <= MAX_LENGTH and ALLOWED.fullmatch(candidate) \
            and not is_reserved(candidate):
        return f"; try “{candidate}”"
    return ""


def _quote(text: str, limit: int = 40) -> str:
    """A user-typed name for a message: quoted, control characters dropped, bounded."""
    clean = "".join(c for c in text if c.isprintable())
    if len(clean) > limit:
        clean = clean[:limit] + "…"
    return f"“{clean}”"
