"""The parse step: a command line becomes its declaration and typed arguments, or the reply that says
what is wrong with it (an unknown command with the closest names, a group without its sub-command, an
argument that does not fit, with the usage line)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Collection

from .registry import ArgError, CommandSpec, Registry, clip, split_words
from .render import Reply


def parse_command(text: str, registry: Registry, prefix: str) -> tuple[CommandSpec, dict[str, Any]] | Reply:
    """`text` starts with `prefix` (the event filter saw to it)."""
    try:
        words = split_words(text[len(prefix):])
    except ArgError as exc:
        return Reply.error(str(exc))
    if not words:
        return Reply.error("that is an empty command.", f"send {prefix}help for the list of commands.")
    spec, rest = registry.find(words)
    if spec is None:
        return unknown(words, registry, prefix)
    try:
        return spec, spec.parse(rest)
    except ArgError as exc:
        return Reply.error(f"{exc}", f"usage: {spec.usage(prefix)}")


def unknown(words: list[str], registry: Registry, prefix: str) -> Reply:
    group = registry.group(words[0])
    if group:
        lines = [f"{prefix}{c.name} — {c.help}" for c in group]
        return Reply.text(f"{prefix}{words[0]} needs one of:\n" + "\n".join(lines))
    typed = prefix + clip(" ".join(words[:2]), 60)
    close = registry.suggest(words)
    hint = ("did you mean " + " or ".join(prefix + c for c in close) + "?") if close \
        else f"send {prefix}help for the list of commands."
    return Reply.error(f"unknown command {typed}", hint)


def first_word(text: str, prefix: str) -> str:
    """The command's first word, for a report about a line that may not even parse."""
    words = text[len(prefix):].split(maxsplit=1)
    return clip(words[0], 30) if words else "?"


# --- addressing: which bot of a room shared by several servers a command is for ------------------

ALL = "all"
ON = "on"
# Commands every bot answers when sent unaddressed in a fleet room (one line each, gathered in one reply).
FLEET_WIDE = frozenset({"fleet"})


@dataclass(frozen=True)
class Address:
    """`target`: "" (unaddressed), "all" or a host name; `text`: the command without its address."""
    target: str
    text: str
    explicit: bool = False         # the sender named the target (`!on nas …`, `!all …`, `!nas …`)


def split_address(text: str, prefix: str, hosts: Collection[str], registry: Registry | None = None) -> Address:
    """`!on nas disk` → ("nas", "!disk"); `!all disk` → ("all", "!disk"); `!nas disk` → ("nas", "!disk")
    when nas is a known host and no command starts with that word; anything else is unaddressed."""
    words = text[len(prefix):].split(maxsplit=2)
    if not words:
        return Address("", text)
    first = words[0].lower()
    if first == ON and len(words) >= 2:
        return Address(words[1].lower(), prefix + (words[2] if len(words) > 2 else ""), True)
    short = first in hosts and (registry is None or not (registry.find([first])[0] or registry.group(first)))
    if first == ALL or short:
        rest = text[len(prefix):].split(maxsplit=1)
        return Address(first, prefix + (rest[1] if len(rest) > 1 else ""), True)
    return Address("", text)


class Addressing:
    """This bot's name among the bots of its rooms, and whether a command is its to answer.

    `live` (set by the fleet package) names the hosts heard from lately; when the room's default bot is
    silent, the first live host in alphabetical order answers unaddressed commands in its place."""

    def __init__(self, host: str | None, peers: dict[str, str], default: str | None, prefix: str = "!",
                 registry: Registry | None = None):
        self.me = host or ""
        self.prefix = prefix
        self.registry = registry
        self.peers = dict(peers)
        self.hosts = sorted({self.me, *self.peers} - {""})
        self.default = default or (self.hosts[0] if self.hosts else "")
        self.live: Callable[[], Collection[str]] | None = None

    @property
    def fleet(self) -> bool:
        """Several bots share the room: unaddressed commands go to one, replies carry the host."""
        return bool(self.peers) and bool(self.me)

    def acting_default(self) -> str:
        if self.live is None:
            return self.default
        live = set(self.live()) | {self.me}
        if self.default in live:
            return self.default
        return min(live)

    def is_default(self) -> bool:
        return not self.fleet or self.acting_default() == self.me

    @classmethod
    def from_config(cls, config, registry: Registry | None = None) -> "Addressing":
        fleet = config.fleet
        return cls(config.host, fleet.peers, fleet.default, config.command_prefix, registry)

    def split(self, text: str) -> Address:
        return split_address(text, self.prefix, self.hosts, self.registry)

    def for_me(self, address: Address) -> bool:
        """Whether this bot looks at the command at all (an unknown host is answered by the default)."""
        if address.target == ALL or address.target == self.me and self.me:
            return True
        if address.target in self.peers:
            return False
        if address.target:                                  # a host nobody has: the default says so
            return self.is_default()
        if not self.fleet:
            return True
        return self.fleet_wide(address) or self.is_default()

    def fleet_wide(self, address: Address) -> bool:
        """An unaddressed command that every bot of a fleet answers (!fleet)."""
        words = address.text[len(self.prefix):].split()
        return self.fleet and not address.target and len(words) == 1 and words[0].lower() in FLEET_WIDE

    def known(self, address: Address) -> bool:
        return address.target in ("", ALL) or address.target in self.hosts
