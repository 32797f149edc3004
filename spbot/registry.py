"""Command declarations: `@command("backup now", help=...)` on an async function whose parameters are
the command's typed arguments. The runtime reads these declarations for parsing, `!help`, policy and locks.

Parameters after `ctx`:
  positional (`name: str`, `days: int = 7`)      → positional arguments, required unless defaulted
  `*rest: str`                                     → the remaining words
  keyword-only (`*, admin: bool = False`)          → options `--admin`, `--display "Name"`
Types: str, int, float, bool (options only), Path, Literal[...], Optional[...], or Annotated[T, Arg(...)]
for help text, a metavar, `secret=True` or bounds (`min`/`max` for numbers, `max_length` for words).
How the words are read and bounded: spbot/arguments.py.

A secret argument (a word, `Arg(secret=True)`) is masked (***) in the audit log and in approval requests,
which neither store nor show it (`CommandSpec.masked_text`, `with_secrets`).

`policy_when` on a declaration makes the policy depend on the arguments (`!user add x --admin` needs
an approval, `!user add x` does not): the dispatcher applies the stricter of it and the declared policy.
A `preview` is checked against the command's arguments when the command is declared.
"""
from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, get_args, get_origin

from .arguments import (  # noqa: F401  (re-exported: where commands and tests have always found them)
    DEFAULT_MAX_LENGTH, MAX_LINE_CHARS, MAX_PATH_LENGTH, ArgError, Param, _base_type, _convert, bind, clip,
    parse_span, plain, shown, split_words,
)
from .declaration_checks import check_preview, check_secrets

MASK = "***"


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
        return bind(self.params, words)

    def masked(self, args: dict[str, Any]) -> dict[str, Any]:
        secret = self.secret_names()
        return {k: (MASK if k in secret else plain(v)) for k, v in args.items()}

    def secret_names(self) -> set[str]:
        return {p.name for p in self.params if p.secret}

    def secrets_of(self, args: dict[str, Any]) -> dict[str, str]:
        """The secret arguments given (not empty), by name."""
        return {name: args[name] for name in self.secret_names() if args.get(name)}

    def masked_text(self, text: str, prefix: str, args: dict[str, Any]) -> str:
        """The command line with each secret argument's word replaced by ***, still parsing to the same
        command (the secret reading ***); `text` itself when no secret was given."""
        secrets = set(self.secrets_of(args).values())
        if not secrets:
            return text
        words = [_mask_word(word, secrets) for word in split_words(text[len(prefix):])]
        return prefix + " ".join(_quoted(word) for word in words)

    def with_secrets(self, masked_args: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any] | None:
        """Arguments parsed from a masked command line, with the secrets put back; None when a masked
        secret is not among `secrets` (they are kept in memory only, so a restart forgets them)."""
        missing = [n for n in self.secret_names() if masked_args.get(n) == MASK and n not in secrets]
        return None if missing else {**masked_args, **secrets}


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
        from difflib import get_close_matches   # only when a name is wrong
        names = [c.name for c in self.visible()]
        typed = " ".join(words[:2]).lower()
        close = get_close_matches(typed, names, n=3, cutoff=0.6)
        firsts = sorted({n.split()[0] for n in names})
        close += [n for n in get_close_matches(words[0].lower(), firsts, n=2, cutoff=0.6)
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
        params = _params_of(func)
        check_secrets(name, params)
        if preview is not None:
            check_preview(name, func, preview)
        spec = CommandSpec(
            name=name.lower(), func=func, help=help, params=params,
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


# --- declaration reading -----------------------------------------------------------------------

def _params_of(func: Callable) -> list[Param]:
    hints = typing.get_type_hints(func, include_extras=True)
    params: list[Param] = []
    for p in list(inspect.signature(func).parameters.values())[1:]:   # skip ctx
        hint, arg = _declared(hints.get(p.name, str))
        kind = {inspect.Parameter.VAR_POSITIONAL: "rest",
                inspect.Parameter.KEYWORD_ONLY: "option"}.get(p.kind, "positional")
        required = p.default is inspect.Parameter.empty and kind == "positional"
        default = None if p.default is inspect.Parameter.empty else p.default
        params.append(Param(p.name, kind, hint, required, default, arg.help, arg.metavar, arg.secret,
                            arg.min, arg.max, arg.max_length))
    return params


def _declared(hint: Any) -> tuple[Any, Arg]:
    """The type and the `Arg` of a parameter's hint: `Annotated[T, Arg(...)]`, also inside an Optional
    (`Annotated[str, Arg(secret=True)] | None`), where it would otherwise be lost."""
    if get_origin(hint) is typing.Annotated:
        return get_args(hint)[0], next((a for a in get_args(hint)[1:] if isinstance(a, Arg)), Arg())
    members = get_args(hint) if get_origin(hint) in (typing.Union, types.UnionType) else ()
    inner = [m for m in members if get_origin(m) is typing.Annotated]
    if inner:
        base, arg = _declared(inner[0])
        return typing.Union[tuple(base if m is inner[0] else m for m in members)], arg
    return hint, Arg()


def invoke(spec: CommandSpec, ctx: Any, values: dict[str, Any]) -> Awaitable[Any]:
    """Call the command's function with parsed values (positional, then the rest, then options)."""
    args = [values[p.name] for p in spec.params if p.kind == "positional"]
    args += [v for p in spec.params if p.kind == "rest" for v in values[p.name]]
    options = {p.name: values[p.name] for p in spec.params if p.kind == "option"}
    return spec.func(ctx, *args, **options)


def _mask_word(word: str, secrets: set[str]) -> str:
    if word in secrets:
        return MASK
    flag, eq, value = word.partition("=")
    return f"{flag}={MASK}" if word.startswith("--") and eq and value in secrets else word


def _quoted(word: str) -> str:
    """A word written so that split_words reads it back as it is."""
    if word and all(c not in word for c in " \t\r\n'\"\\"):
        return word
    return "'" + word.replace("'", "'\\''") + "'"
