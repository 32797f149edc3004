"""A reboot is reported even when it restarted the bot: the mark stored before the request is
read after the restart, and the room is told how the reboot ended (retrying while the network of
a freshly booted machine comes up)."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import psutil


from ...render import Reply, human_duration
from .after_restart import report_after_restart
from .marks import forget_reboot, reboot_mark

if TYPE_CHECKING:
    from .feature import ServerFeature

# Lines ending the report; the simulated cloud's plugin (dev stack) adds "a stand-in answered".
REPORT_NOTES: list[str] = []


async def report_reboot_after_restart(server: ServerFeature) -> None:
    """A reboot was asked for before the bot stopped: tell the room how it ended (after_restart.py)."""
    await report_after_restart(
        server.host, "reboot", reboot_mark, forget_reboot, lambda mark: _reboot_outcome(server, mark),
        lambda mark, exc: Reply.error(f"I could not find out how the reboot of {mark['server']} "
                                      f"(job #{mark['job_id']}) ended: {exc.what}",
                                      f"Check the server in {server.settings.console}."), REPORT_NOTES)


async def _reboot_outcome(server: ServerFeature, mark: dict[str, Any]) -> Reply:
    settings, provider = server.require_settings(), server.provider()
    action = await provider.action(mark["action_id"]) if mark.get("action_id") else None
    deadline = time.monotonic() + settings.action_timeout
    while action is not None and action.status == "running" and time.monotonic() < deadline:
        await asyncio.sleep(settings.poll_interval)
        action = await provider.action(action.id)
    facts = await provider.server_facts()
    what = f"The reboot of {facts.name} (job #{mark['job_id']})"
    label, console = settings.label, settings.console
    if action is not None and action.status == "error":
        error = action.error or {}
        return Reply.error(f"{what} failed: {label}'s reboot action #{action.id} ended in error: "
                           f"{error.get('message', 'no message')} "
                           f"({error.get('code', 'unknown')}); the server is {facts.status}.",
                           f"Check the server in {console}.")
    if action is not None and action.status == "running":
        return Reply.error(f"{what} is still running at {label} (action #{action.id}); the "
                           f"server is {facts.status}.", f"Check it in {console}.")
    ago = human_duration(time.time() - mark["requested_at"])
    if action is None:
        lines = [f"ℹ️ {what}, asked {ago} ago: I stopped before {label} confirmed the reboot "
                 f"request; the server is {facts.status}."]
    else:
        lines = [f"✅ {facts.name} rebooted (job #{mark['job_id']}, asked {ago} ago): {label}'s "
                 f"reboot action #{action.id} succeeded; the server is {facts.status}."]
    if mark.get("own_host"):
        lines.append(_restart_note(server.host.config.timezone, mark["requested_at"]))
    return Reply.text("\n".join(lines))


def _restart_note(timezone: str, requested_at: float) -> str:
    boot = psutil.boot_time()
    booted = f"{datetime.fromtimestamp(boot, ZoneInfo(timezone)):%Y-%m-%d %H:%M %Z}"
    if boot > requested_at:
        return f"This machine booted at {booted}: the reboot restarted me as well."
    return (f"I was stopped while waiting for it (this machine is up since {booted}), so the "
            "note above about the job ending is about that wait.")
