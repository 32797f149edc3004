"""A resize powers the server off, changes its type and powers it on again. A stop of the bot between
those steps (a crash, the OOM killer) or an admin's `!cancel` would leave the family's server off, with
nobody told. So the resize is marked before its first step; the mark is read at the next start (or at
once after a cancel): what the provider still runs for the server is waited for, a server that was
running before is powered on again, and the command's room is told which type it is now, as a reply to
the command (retrying while the network of a freshly booted machine comes up). When the bot cannot tell
whether the server is on, the reply mentions the admin who asked: it rings."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spbot.providers.errors import ProviderError

from ...render import Reply
from .after_restart import report_after_restart
from .marks import forget_resize, resize_mark

if TYPE_CHECKING:
    from .feature import ServerFeature

STOPPED = "I was stopped"
CANCELLED = "The resize was cancelled"


async def finish_resize(server: ServerFeature, why: str = STOPPED) -> None:
    """Finish the resize the mark names, if any, and answer its command."""
    await report_after_restart(
        server.host, "resize", resize_mark, forget_resize, lambda mark: _finish(server, mark, why),
        lambda mark, exc: Reply.error(
            f"{_what(why, mark)}, and I could not find out how far it got: {exc.what}",
            f"Look at the server in {server.settings.console}; power it on there if it is off.",
        ).to([mark["requester"]]))


def _what(why: str, mark: dict[str, Any]) -> str:
    return (f"{why} while resizing {mark['server']} from {mark['current']} to {mark['new']} "
            f"(job #{mark['job_id']})")


async def _finish(server: ServerFeature, mark: dict[str, Any], why: str) -> Reply:
    settings, provider = server.require_settings(), server.provider()
    if (managed := (await provider.server_facts()).name) != mark["server"]:
        return Reply.error(f"{_what(why, mark)}; I now manage {managed} instead, so I did not touch either.",
                           f"Look at {mark['server']} in {settings.console}; power it on there if it is off.",
                           ).to([mark["requester"]])
    lines = await _wait_for_running(provider)
    facts = await provider.server_facts()
    changed = facts.server_type.name == mark["new"]
    outcome = (f"it is now a {mark['new']}" if changed
               else f"it is still a {facts.server_type.name}; the type was not changed")
    if mark["was_running"] and facts.status == "off":
        await provider.power_on()
        facts = await provider.server_facts()
        lines.append(f"It was off, so I powered it on again: it is {facts.status}.")
    elif not mark["was_running"]:
        lines.append(f"It was off before the resize; it is {facts.status} now.")
    else:
        lines.append(f"The server is {facts.status}.")
    if not changed:
        lines.append("Send the command again if you still want the new type.")
    icon = "✅" if changed else "ℹ️"
    return Reply.text("\n".join([f"{icon} {_what(why, mark)}: {outcome}."] + lines))


async def _wait_for_running(provider: Any) -> list[str]:
    """Wait for each action still running on the server; what went wrong with the ones that failed
    (the provider's words name the action)."""
    failed = []
    for action in await provider.running_actions():
        try:
            await provider.wait_action(action, "finishing the resize")
        except ProviderError as exc:
            failed.append(f"{exc.what}.".replace("..", "."))
    return failed
