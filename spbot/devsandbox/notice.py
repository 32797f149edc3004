"""Every reply of a command that a stand-in answers ends with one line saying so, so nobody mistakes the
demo for their server.

The dev stack's config lists the plugins that use this (system_notice for the sandboxed system tools,
cloud_notice for the simulated Hetzner and DNS APIs). Loaded after the built-in commands, they wrap the
functions of those commands; errors get the line too, and so do the reports a feature sends after a
restart (the "back after a reboot" of a reboot a stand-in did: `add_report_note`). Without them (a real server, or
`spbot dev up --real-system`) nothing changes.
"""
from __future__ import annotations

import functools

from spbot.context import UserError
from spbot.registry import REGISTRY
from spbot.render import Reply

NOTICE = "🧪 Dev sandbox: a stand-in answered; nothing real was changed."
# Commands backed by the sandbox's stand-ins: system tools and root's keys; the fake cloud APIs.
SYSTEM_GROUPS = ("upgrade", "rollback", "generations", "reboot", "cleanup", "service", "services", "ssh")
CLOUD_GROUPS = ("server", "volume", "dns")


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


def install(groups: tuple[str, ...]) -> int:
    """Wrap every command of these groups once; returns how many were wrapped."""
    count = 0
    for spec in REGISTRY.commands.values():
        if spec.name.split()[0] in groups and not getattr(spec.func, "sandbox_notice", False):
            spec.func = _with_notice(spec.func)
            count += 1
    return count


def add_report_note(notes: list[str]) -> None:
    """End a feature's after-restart reports (its REPORT_NOTES) with the notice, once."""
    if NOTICE not in notes:
        notes.append(NOTICE)
