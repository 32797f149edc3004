"""The parse step: a command line becomes its declaration and typed arguments, or the reply that says
what is wrong with it (an unknown command with the closest names, a group without its sub-command, an
argument that does not fit, with the usage line)."""
from __future__ import annotations

from typing import Any

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
