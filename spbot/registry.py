"""Command declarations: `@command("backup now", help=...)` on an async function whose parameters are
the command's typed arguments. The runtime reads these declarations for parsing, `!help`, policy and locks.

Parameters after `ctx`:
  positional (`name: str`, `days: int = 7`)      → positional arguments, required unless defaulted
  `*rest: str`                                     → the remaining words
  keyword-only (`*, admin: bool = False`)          → options `--admin`, `--display "Name"`
Types: str, int, float, bool (options only), Path, Literal[...], Optional[...], or Annotated[T, Arg(...)]
for help text, a metavar, `secret=True` (masked in the audit log) or bounds (`min`/`max` for numbers,
`max_length` for words). Every value is bounded even without a declared bound (DEFAULT_* below): a chat
line is untrusted input, and a huge number or word must end in a clear error, never a crash downstream.

`policy_when` on a declaration makes the policy depend on the arguments (`!user add x --admin` needs
an approval, `!user add x` does not): the dispatcher applies the stricter of it and the declared policy.
"""
from __future__ import annotations

import difflib
import inspect
import math
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Literal, get_args, get_origin


class ArgError(Exception):
    """The words after the command do not fit its arguments; the message says which and why."""


MAX_LINE_CHARS = 4096            # a command line longer than this is refused before it is read
DEFAULT_INT_RANGE = (0, 1_000_000_000)
DEFAULT_FLOAT_RANGE = (0.0, 1e9)
DEFAULT_MAX_LENGTH = 2048        # one word (str); a path gets MAX_PATH_LENGTH
MAX_PATH_LENGTH = 1024
_NUMBER_CHARS = 40               # longer than this is not a number anybody types


@dataclass(frozen=True)
class Arg:
    help: str = ""
    metavar: str = ""
    secret: bool = False
    min: float | None = None     # numbers: smallest and largest value accepted
    max: float | None = None
    max_length: int | None = None   # words and paths: most characters accepted


@dataclass(frozen=True)
class Policy:
    """Who must agree before a command runs: `approvals` other admins, or the requester's `confirm`;
    `expires` (seconds) overrides the configured approval expiry."""
    approvals: int = 0
    confirm: bool = False
    expires: float | None = None

    @property
    def needs_request(self) -> bool:
        return self.approvals > 0 or self.confirm

    def stricter(self, other: "Policy | None") -> "Policy":
        """The policy that asks for at least what either asks for."""
        if other is None:
            return self
        expiries = [e for e in (self.expires, other.expires) if e is not None]
        return Policy(approvals=max(self.approvals, other.approvals), confirm=self.confirm or other.confirm,
                      expires=min(expiries) if expiries else None)


NO_APPROVAL = Policy()
ONE_OTHER_ADMIN = Policy(approvals=1)


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


@dataclass
class CommandSpec:
    name: str
    func: Callable[..., Awaitable[Any]]
    help: str
    params: list[Param]
    dangerous: bool = False
    policy: Policy = NO_APPROVAL
    locks: frozenset[str] = frozenset()
    long_help: str = ""
    hidden: bool = False
    group: str = "other"     # the !help group (commands/help.py names them)
    job: bool = False        # runs as a job: listed in !jobs, cancellable, may report progress
    # async (bot, **args) -> str: the concrete target, cost or size, shown in the approval request
    preview: Callable[..., Awaitable[str]] | None = None
    # (parsed args) -> Policy | None: a stricter policy for these arguments (e.g. --admin needs approval)
    policy_when: Callable[[dict[str, Any]], Policy | None] | None = None

    def policy_for(self, args: dict[str, Any], base: Policy | None = None) -> Policy:
        """The policy for these arguments: `base` (the declared or configured one), made stricter by
        `policy_when` when it asks for more."""
        base = base if base is not None else self.policy
        return base.stricter(self.policy_when(args)) if self.policy_when is not None else base

    def usage(self, prefix: str = "!") -> str:
        return " ".join([prefix + self.name] + [p.usage() for p in self.params])

    def parse(self, words: list[str]) -> dict[str, Any]:
        """Typed keyword arguments for the function, or ArgError."""
        return _bind(self, words)

    def masked(self, args: dict[str, Any]) -> dict[str, Any]:
        secret = {p.name for p in self.params if p.secret}
        return {k: ("***" if k in secret else _plain(v)) for k, v in args.items()}


class Registry:
    def __init__(self) -> None:
        self.commands: dict[str, CommandSpec] = {}
        self.startup_hooks: list[Callable[[Any], Awaitable[None]]] = []

    def add(self, spec: CommandSpec) -> None:
        if spec.name in self.commands:
            raise ValueError(f"command {spec.name!r} is declared twice")
        self.commands[spec.name] = spec

    def find(self, words: list[str]) -> tuple[CommandSpec | None, list[str]]:
        """The longest declared name that starts `words`, and the words left for its arguments."""
        for size in range(min(len(words), 3), 0, -1):
            name = " ".join(words[:size]).lower()
            if name in self.commands:
                return self.commands[name], words[size:]
        return None, words

    def group(self, first_word: str) -> list[CommandSpec]:
        """Commands whose name starts with this word ('backup' → backup now, backup list…)."""
        return [c for c in self.visible() if c.name.split()[0] == first_word.lower()]

    def suggest(self, words: list[str]) -> list[str]:
        names = [c.name for c in self.visible()]
        typed = " ".join(words[:2]).lower()
        close = difflib.get_close_matches(typed, names, n=3, cutoff=0.6)
        firsts = sorted({n.split()[0] for n in names})
        close += [n for n in difflib.get_close_matches(words[0].lower(), firsts, n=2, cutoff=0.6)
                  if n not in close and not any(c.startswith(n) for c in close)]
        return close[:3]

    def visible(self) -> list[CommandSpec]:
        return sorted((c for c in self.commands.values() if not c.hidden), key=lambda c: c.name)


REGISTRY = Registry()


def command(name: str, *, help: str, dangerous: bool = False, policy: Policy | None = None,
            locks: typing.Iterable[str] = (), hidden: bool = False, group: str = "other", job: bool | None = None,
            preview: Callable[..., Awaitable[str]] | None = None, registry: Registry | None = None,
            policy_when: Callable[[dict[str, Any]], Policy | None] | None = None):
    """Declare a chat command. Dangerous commands need one other admin's approval unless `policy`
    (or the [policies] table of the config) says otherwise; `policy_when(args)` may ask for more for
    some arguments. Dangerous commands and commands that take locks run as jobs unless `job=False`."""
    def decorate(func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        spec = CommandSpec(
            name=name.lower(), func=func, help=help, params=_params_of(func),
            dangerous=dangerous,
            policy=policy if policy is not None else (ONE_OTHER_ADMIN if dangerous else NO_APPROVAL),
            locks=frozenset(locks), long_help=inspect.getdoc(func) or "", hidden=hidden, group=group,
            job=job if job is not None else bool(dangerous or locks), preview=preview,
            policy_when=policy_when)
        (registry or REGISTRY).add(spec)
        func.spec = spec
        return func
    return decorate


def on_startup(func: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    """Run `await func(bot)` once the bot is connected: command modules register scheduled jobs here."""
    REGISTRY.startup_hooks.append(func)
    return func


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


# --- declaration reading -----------------------------------------------------------------------

def _params_of(func: Callable) -> list[Param]:
    hints = typing.get_type_hints(func, include_extras=True)
    params: list[Param] = []
    for p in list(inspect.signature(func).parameters.values())[1:]:   # skip ctx
        hint = hints.get(p.name, str)
        arg = next((a for a in get_args(hint)[1:] if isinstance(a, Arg)), Arg()) \
            if get_origin(hint) is typing.Annotated else Arg()
        if get_origin(hint) is typing.Annotated:
            hint = get_args(hint)[0]
        kind = {inspect.Parameter.VAR_POSITIONAL: "rest",
                inspect.Parameter.KEYWORD_ONLY: "option"}.get(p.kind, "positional")
        required = p.default is inspect.Parameter.empty and kind == "positional"
        default = None if p.default is inspect.Parameter.empty else p.default
        params.append(Param(p.name, kind, hint, required, default, arg.help, arg.metavar, arg.secret,
                            arg.min, arg.max, arg.max_length))
    return params


def _base_type(hint: Any) -> Any:
    if get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
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
            raise ArgError(f"{label}: {exc}")
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


def _bind(spec: CommandSpec, words: list[str]) -> dict[str, Any]:
    options = {p.flag: p for p in spec.params if p.kind == "option"}
    positional = [p for p in spec.params if p.kind == "positional"]
    rest = next((p for p in spec.params if p.kind == "rest"), None)
    values: dict[str, Any] = {p.name: p.default for p in spec.params if p.kind == "option"}
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


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def invoke(spec: CommandSpec, ctx: Any, values: dict[str, Any]) -> Awaitable[Any]:
    """Call the command's function with parsed values (positional, then the rest, then options)."""
    args = [values[p.name] for p in spec.params if p.kind == "positional"]
    args += [v for p in spec.params if p.kind == "rest" for v in values[p.name]]
    options = {p.name: values[p.name] for p in spec.params if p.kind == "option"}
    return spec.func(ctx, *args, **options)
