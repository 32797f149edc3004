"""Reading a command's words: shell-like splitting (never a shell), each word converted to its declared
type within bounds, and the words bound to the declared parameters (`Param`, read from the command's
signature by spbot/registry.py). Every value is bounded even without a declared bound (DEFAULT_* below):
a chat line is untrusted input, and a huge number or word must end in a clear error, never a crash
downstream."""
from __future__ import annotations

import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin


class ArgError(Exception):
    """The words after the command do not fit its arguments; the message says which and why."""


MAX_LINE_CHARS = 4096            # a command line longer than this is refused before it is read
DEFAULT_INT_RANGE = (0, 1_000_000_000)
DEFAULT_FLOAT_RANGE = (0.0, 1e9)
DEFAULT_MAX_LENGTH = 2048        # one word (str); a path gets MAX_PATH_LENGTH
MAX_PATH_LENGTH = 1024
_NUMBER_CHARS = 40               # longer than this is not a number anybody types


@dataclass
class Param:
    name: str
    kind: str              # "positional" | "rest" | "option"
    type: Any
    required: bool
    default: Any
    help: str = ""
    metavar: str = ""
    secret: bool = False
    min: float | None = None
    max: float | None = None
    max_length: int | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def usage(self) -> str:
        meta = self.metavar or self.name
        if self.kind == "rest":
            return f"[{meta}…]" if not self.required else f"<{meta}>…"
        if self.kind == "option":
            if _base_type(self.type) is bool:
                return f"[{self.flag}]"
            return f"[{self.flag} {(self.metavar or self.name).upper()}]"
        return f"<{meta}>" if self.required else f"[{meta}]"


_BLANK = " \t\r\n"                               # what separates words (as in a POSIX shell)
_PLAIN = re.compile(r"[^ \t\r\n'\"\\]+")
_IN_DOUBLE_QUOTES = re.compile(r'[\\"]')


def split_words(text: str) -> list[str]:
    """Shell-like words (quotes group words, a backslash escapes) but never interpreted by a shell.
    Linear in the length of the line, which is bounded (MAX_LINE_CHARS) before anything is read."""
    if len(text) > MAX_LINE_CHARS:
        raise ArgError(f"that command is {len(text):,} characters long; the limit is {MAX_LINE_CHARS:,}. "
                       "Nothing was run.")
    if "\x00" in text:
        raise ArgError("the command contains a NUL character; nothing was run.")
    words: list[str] = []
    i, end = 0, len(text)
    while True:
        while i < end and text[i] in _BLANK:
            i += 1
        if i >= end:
            return words
        parts: list[str] = []
        while i < end and text[i] not in _BLANK:
            i = _read_part(text, i, parts)
        words.append("".join(parts))


def _read_part(text: str, i: int, parts: list[str]) -> int:
    """Read one piece of a word at `i` (plain text, '…', "…" or an escaped character) into `parts`;
    returns where the next piece starts."""
    char = text[i]
    if char == "'":
        close = text.find("'", i + 1)
        if close < 0:
            raise _unreadable("No closing quotation")
        parts.append(text[i + 1:close])
        return close + 1
    if char == '"':
        return _read_double_quoted(text, i + 1, parts)
    if char == "\\":
        if i + 1 >= len(text):
            raise _unreadable("No escaped character")
        parts.append(text[i + 1])
        return i + 2
    plain = _PLAIN.match(text, i)
    parts.append(plain.group())
    return plain.end()


def _read_double_quoted(text: str, i: int, parts: list[str]) -> int:
    # Inside "…" a backslash escapes only \ and "; before any other character it stays (POSIX shell).
    while True:
        stop = _IN_DOUBLE_QUOTES.search(text, i)
        if stop is None or (text[stop.start()] == "\\" and stop.start() + 1 >= len(text)):
            raise _unreadable("No closing quotation")
        parts.append(text[i:stop.start()])
        if text[stop.start()] == '"':
            return stop.start() + 1
        escaped = text[stop.start() + 1]
        parts.append(escaped if escaped in '\\"' else "\\" + escaped)
        i = stop.start() + 2


def _unreadable(why: str) -> ArgError:
    return ArgError(f"cannot read the command: {why} (check your quotes)")


def clip(text: str, limit: int = 40) -> str:
    """`text` cut short for a message: a reply never echoes a huge input back."""
    return text if len(text) <= limit else text[:limit] + "…"


def shown(text: str, limit: int = 40) -> str:
    """`text` quoted (as Python would) and cut short, for an error message; the quoted form is cut too,
    since escapes (\\U0001f600…) can make it ten times longer than the text."""
    return clip(repr(clip(text, limit)), limit + 20)


def _base_type(hint: Any) -> Any:
    if get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return hint


def _convert(param: Param, word: str) -> Any:
    target = _base_type(param.type)
    label = param.flag if param.kind == "option" else f"<{param.metavar or param.name}>"
    if "\x00" in word:
        raise ArgError(f"{label} contains a NUL character")
    if get_origin(target) is Literal:
        choices = [str(c) for c in get_args(target)]
        if word.lower() not in choices:
            raise ArgError(f"{label} must be one of {', '.join(choices)}, not {shown(word)}")
        return word.lower()
    if target in (int, float):
        return _number(param, target, word, label)
    if target is Path:
        return Path(_bounded_word(param, word, label, MAX_PATH_LENGTH))
    if hasattr(target, "parse_arg"):
        _bounded_word(param, word, label, DEFAULT_MAX_LENGTH)
        try:
            return target.parse_arg(word)
        except (ValueError, OverflowError) as exc:
            text = str(exc)       # a converter may quote the word: keep the reply short however long it was
            raise ArgError(f"{label}: {text if len(text) <= 300 else text[:299] + '…'}")
    return _bounded_word(param, word, label, DEFAULT_MAX_LENGTH)


def _bounded_word(param: Param, word: str, label: str, default_length: int) -> str:
    limit = param.max_length if param.max_length is not None else default_length
    if len(word) > limit:
        raise ArgError(f"{label} is {len(word):,} characters long; at most {limit:,} are accepted")
    return word


def _number(param: Param, target: type, word: str, label: str) -> int | float:
    kind = "whole number" if target is int else "number"
    value: int | float | None = None
    if len(word) <= _NUMBER_CHARS and word.isascii():
        try:
            value = target(word)
        except ValueError:
            value = None
    if value is None or (target is float and not math.isfinite(value)):
        raise ArgError(f"{label} must be a {kind}, not {shown(word)}")
    low, high = DEFAULT_INT_RANGE if target is int else DEFAULT_FLOAT_RANGE
    low = param.min if param.min is not None else low
    high = param.max if param.max is not None else high
    if value < low:
        raise ArgError(f"{label} must be at least {_number_text(low)}, not {shown(word)}")
    if value > high:
        raise ArgError(f"{label} must be at most {_number_text(high)}, not {shown(word)}")
    return value


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


_SPAN = re.compile(r"^\s*(\d{1,12}(?:\.\d{1,9})?)\s*([smhdw]?)\s*$")
_SPAN_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_span(word: str, most: float) -> float:
    """'90s', '10m', '2h', '7d', '2w' or seconds → seconds, at most `most`; ValueError otherwise.
    Digits are bounded before any arithmetic, so no input overflows a float or a timedelta."""
    match = _SPAN.match(word) if len(word) <= _NUMBER_CHARS else None
    if match is None:
        raise ValueError("expected a duration such as 90s, 10m, 2h or 7d")
    seconds = float(match.group(1)) * _SPAN_SECONDS[match.group(2)]
    if seconds > most:
        raise ValueError(f"at most {_span_text(most)}, not {shown(word)}")
    return seconds


def _span_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def bind(params: list[Param], words: list[str]) -> dict[str, Any]:
    """Typed keyword arguments for these parameters, or ArgError."""
    options = {p.flag: p for p in params if p.kind == "option"}
    positional = [p for p in params if p.kind == "positional"]
    rest = next((p for p in params if p.kind == "rest"), None)
    values: dict[str, Any] = {p.name: p.default for p in params if p.kind == "option"}
    loose: list[str] = []
    i, only_positional = 0, False
    while i < len(words):
        word = words[i]
        if word == "--" and not only_positional:
            only_positional = True
        elif word.startswith("--") and not only_positional:
            flag, _, inline = word.partition("=")
            param = options.get(flag)
            if param is None:
                known = ", ".join(options) or "none"
                raise ArgError(f"unknown option {clip(flag)} (options: {known})")
            if _base_type(param.type) is bool:
                if inline:
                    raise ArgError(f"{flag} takes no value: write {flag} alone")
                values[param.name] = True
            else:
                if not inline:
                    i += 1
                    if i >= len(words):
                        raise ArgError(f"{flag} needs a value")
                    inline = words[i]
                values[param.name] = _convert(param, inline)
        else:
            loose.append(word)
        i += 1
    missing = [p for p in positional[len(loose):] if p.required]
    if missing:
        raise ArgError(f"missing <{missing[0].metavar or missing[0].name}>")
    if len(loose) > len(positional) and rest is None:
        raise ArgError(f"too many arguments: {shown(' '.join(loose[len(positional):]), 60)}")
    for param, word in zip(positional, loose):
        values[param.name] = _convert(param, word)
    for param in positional[len(loose):]:
        values[param.name] = param.default
    extra = loose[len(positional):]
    if rest is not None:
        values[rest.name] = [_convert(rest, w) for w in extra]
    return values


def plain(value: Any) -> Any:
    """A value as JSON can hold it (for the audit log and stored requests)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
