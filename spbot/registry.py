"""Command declarations: `@command("backup now", help=...)` on an async function whose parameters are
the command's typed arguments. The runtime reads these declarations for parsing, `!help`, policy and locks.

Parameters after `ctx`:
  positional (`name: str`, `days: int = 7`)      → positional arguments, required unless defaulted
  `*rest: str`                                     → the remaining words
  keyword-only (`*, admin: bool = False`)          → options `--admin`, `--display "Name"`
Types: str, int, float, bool (options only), Path, Literal[...], Optional[...], or Annotated[T, Arg(...)]
for help text, a metavar, or `secret=True` (masked in the audit log).
"""
from __future__ import annotations

import difflib
import inspect
import shlex
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Literal, get_args, get_origin


class ArgError(Exception):
    """The words after the command do not fit its arguments; the message says which and why."""


@dataclass(frozen=True)
class Arg:
    help: str = ""
    metavar: str = ""
    secret: bool = False


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
    job: bool = False        # runs as a job: listed in !jobs, cancellable, may report progress
    # async (bot, **args) -> str: the concrete target, cost or size, shown in the approval request
    preview: Callable[..., Awaitable[str]] | None = None

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
            locks: typing.Iterable[str] = (), hidden: bool = False, job: bool | None = None,
            preview: Callable[..., Awaitable[str]] | None = None, registry: Registry | None = None):
    """Declare a chat command. Dangerous commands need one other admin's approval unless `policy`
    (or the [policies] table of the config) says otherwise. Dangerous commands and commands that
    take locks run as jobs unless `job=False`."""
    def decorate(func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        spec = CommandSpec(
            name=name.lower(), func=func, help=help, params=_params_of(func),
            dangerous=dangerous,
            policy=policy if policy is not None else (ONE_OTHER_ADMIN if dangerous else NO_APPROVAL),
            locks=frozenset(locks), long_help=inspect.getdoc(func) or "", hidden=hidden,
            job=job if job is not None else bool(dangerous or locks), preview=preview)
        (registry or REGISTRY).add(spec)
        func.spec = spec
        return func
    return decorate


def on_startup(func: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    """Run `await func(bot)` once the bot is connected: command modules register scheduled jobs here."""
    REGISTRY.startup_hooks.append(func)
    return func


def split_words(text: str) -> list[str]:
    """Shell-like words (quotes group words) but never interpreted by a shell."""
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise ArgError(f"cannot read the command: {exc} (check your quotes)")


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
        params.append(Param(p.name, kind, hint, required, default, arg.help, arg.metavar, arg.secret))
    return params


def _base_type(hint: Any) -> Any:
    if get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return hint


def _convert(param: Param, word: str) -> Any:
    target = _base_type(param.type)
    label = param.flag if param.kind == "option" else f"<{param.metavar or param.name}>"
    if get_origin(target) is Literal:
        choices = [str(c) for c in get_args(target)]
        if word.lower() not in choices:
            raise ArgError(f"{label} must be one of {', '.join(choices)}, not {word!r}")
        return word.lower()
    if target in (int, float):
        try:
            return target(word)
        except ValueError:
            raise ArgError(f"{label} must be a {'whole ' if target is int else ''}number, not {word!r}")
    if target is Path:
        return Path(word)
    if hasattr(target, "parse_arg"):
        try:
            return target.parse_arg(word)
        except ValueError as exc:
            raise ArgError(f"{label}: {exc}")
    return word


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
                raise ArgError(f"unknown option {flag} (options: {known})")
            if _base_type(param.type) is bool:
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
        raise ArgError(f"too many arguments: {' '.join(loose[len(positional):])!r}")
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
