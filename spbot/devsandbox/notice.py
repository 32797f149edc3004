"""A plugin the dev stack's config lists: every reply of a command that a stand-in answers ends with one
line saying so, so nobody mistakes the demo for their server.

Loaded after the built-in commands (`plugins = ["spbot.devsandbox.notice"]`), it wraps the functions of
the commands whose tools or data are simulated in the dev stack; errors get the line too. Without the
plugin (a real server, or `spbot dev up --real-system`) nothing changes.
"""
from __future__ import annotations

import functools

from spbot.context import UserError
from spbot.registry import REGISTRY
from spbot.render import Reply

NOTICE = "🧪 Dev sandbox: a stand-in answered; nothing on this machine was changed."
# Commands backed by the sandbox's stand-ins (system tools, root's keys, the fake cloud APIs).
SANDBOXED_GROUPS = ("upgrade", "rollback", "generations", "reboot", "cleanup", "service", "services",
                    "ssh", "server", "volume", "dns")


def _with_notice(func):
    @functools.wraps(func)
    async def wrapped(*args, **kwargs):
        try:
            result = await func(*args, **kwargs)
        except UserError as exc:
            raise UserError(exc.what, (exc.todo + "\n" if exc.todo else "") + NOTICE) from exc
        return result + Reply.text(NOTICE) if isinstance(result, Reply) else result
    wrapped.sandbox_notice = True
    return wrapped


def install() -> int:
    """Wrap every sandboxed command once; returns how many were wrapped."""
    count = 0
    for spec in REGISTRY.commands.values():
        if spec.name.split()[0] in SANDBOXED_GROUPS and not getattr(spec.func, "sandbox_notice", False):
            spec.func = _with_notice(spec.func)
            count += 1
    return count


install()
