"""Checks a command declaration must pass when it is made (at import), not when an admin first runs it:
its preview takes the command's arguments, and a secret argument is a plain word that can be masked."""
from __future__ import annotations

import inspect
from typing import Any, Callable

from .arguments import Param, _base_type


class DeclarationError(TypeError):
    """A command is declared in a way that cannot work; the message names the command and the fix."""


def check_preview(name: str, func: Callable[..., Any], preview: Callable[..., Any]) -> None:
    """The approval step calls `preview(host, **args)` with every argument of the command by name: a
    preview that cannot take them (a renamed or missing parameter, one the command does not have)
    would fail at the first request."""
    arguments = [p.name for p in list(inspect.signature(func).parameters.values())[1:]]
    try:
        inspect.signature(preview).bind(None, **{a: None for a in arguments})
    except TypeError as exc:
        raise DeclarationError(
            f"!{name}: its preview {preview.__qualname__} does not take the command's arguments "
            f"({', '.join(arguments) or 'none'}): {exc}. Give it (host, {', '.join(arguments)}) with "
            "the same names, or (host, **args).") from None


def check_secrets(name: str, params: list[Param]) -> None:
    """A secret is masked in approval requests by replacing its word with ***, which must read back as the
    same argument: only a single word (str, positional or option) can be secret."""
    for param in params:
        if param.secret and (param.kind == "rest" or _base_type(param.type) is not str):
            raise DeclarationError(f"!{name}: the secret argument {param.name} must be one word (str), "
                                   "so it can be masked in approval requests")
