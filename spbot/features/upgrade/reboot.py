"""The reboot and what follows it. The intent is kept in the store before systemd is asked, so that
after start-up the bot says it is back after a planned reboot, that the reboot did not happen, or that
the server restarted without one; and the "reboot needed" reminder."""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from spbot.context import UserError
from spbot.logs import get_logger
from spbot.render import Reply, human_duration, mention

from .drivers.errors import UpgradeError
from .drivers.results import RebootStatus
from .drivers.systemctl import reboot
from .flows import UpgradeFlows
from .machine import boot_id, uptime
from .render import reboot_line
from .settings import UpgradeSettings

if TYPE_CHECKING:
    from spbot.jobs import Job

    from .feature import UpgradeHost

log = get_logger(__name__)

INTENT_KEY = "upgrade:reboot_intent"
BOOT_KEY = "upgrade:boot_id"
REBOOT_ALERT = "upgrade:reboot-required"
# Lines ending every after-restart report; the dev sandbox's plugin adds "a stand-in answered".
REPORT_NOTES: list[str] = []


class Reboots:
    def __init__(self, host: "UpgradeHost", settings: UpgradeSettings, flows: UpgradeFlows):
        self.host = host
        self.settings = settings
        self.flows = flows

    def uptime(self) -> float | None:
        return uptime(self.settings)

    async def reboot_soon(self, requester: str, job: "Job", room_id: str, event_id: str) -> None:
        """Remember that this reboot was asked for, and from which boot, then reboot once the job's
        reply has left (in the background: the job ends first)."""
        await self.host.store.put(INTENT_KEY, {"at": time.time(), "by": requester, "room_id": room_id,
                                               "event_id": event_id, "boot_id": boot_id(self.settings)})
        self.host.spawn(self.reboot_when_said(job, room_id, event_id), name="reboot")

    async def reboot_when_said(self, job: "Job", room_id: str, event_id: str) -> None:
        """Reboot once the job has ended and its notice has left: the bot goes down with the machine."""
        host = self.host
        task = host.jobs.tasks.get(job.id)
        if task is not None:
            await asyncio.wait([task], timeout=60)
        deadline = time.monotonic() + self.settings.notice_wait
        while await host.outbox.pending() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        log.warning("rebooting", requester=job.requester)
        try:
            await reboot(self.settings.reboot)
        except UpgradeError as exc:
            await host.store.put(INTENT_KEY, None)
            detail = f"\n{exc.tail[-1]}" if exc.tail else ""
            reply = Reply.error(f"the reboot did not happen: {exc}{detail}",
                                "The server is still running as before. Check that the bot may run "
                                "systemctl reboot, or reboot it from the provider's console.")
            content = reply.content()
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": event_id}}
            await host.outbox.send(room_id, content)

    async def announce_start(self) -> None:
        """After start-up: back after a planned reboot, a reboot that did not happen, or an unplanned one.

        The kernel's boot id changes at every boot, so unlike uptimes it is not fooled by clock changes.
        A restart of the bot alone (same boot, no reboot asked) stays quiet.
        """
        store = self.host.store
        current, up = boot_id(self.settings), uptime(self.settings)
        intent = await store.get(INTENT_KEY)
        previous = await store.get(BOOT_KEY)
        await store.put(BOOT_KEY, current)
        if intent:
            await store.put(INTENT_KEY, None)
        rebooted = current is not None and current != (intent or {}).get("boot_id", previous)
        if intent and not rebooted:
            await self._say_in(intent, Reply.text(
                f"⚠️ I restarted, but the server did not reboot ({_uptime_text(up)}): the reboot asked by "
                f"{intent['by']} {human_duration(time.time() - intent['at'])} ago did not happen.\n"
                "Send !reboot again if it is still needed."))
            return
        if not rebooted or (previous is None and not intent):
            return                                      # a restart of the bot only, or its first start
        status = await self._status()
        if intent:
            await self._say_in(intent, Reply.text(f"✅ Back after a reboot, {_uptime_text(up)} (asked by "
                                                  f"{intent['by']}).\n{reboot_line(status)}"))
        else:
            await self.host.notify(_with_notes(mention(self.host.config.admins, (
                f"⚠️ The server restarted without a !reboot (power cut, crash, or a reboot from outside "
                f"the bot); I am back, {_uptime_text(up)}.\n{reboot_line(status)}\nIf that was not "
                "expected, look at the provider's console and !status."))))
        if not status.required:
            await self.host.alerts.clear(REBOOT_ALERT, "the server no longer needs a reboot")

    async def remind(self, status: RebootStatus) -> None:
        """The "reboot needed" alert, repeated every reboot_reminder; cleared once no reboot is needed."""
        if status.required:
            why = f" ({', '.join(status.reasons[:5])})" if status.reasons else ""
            await self.host.alerts.fire(REBOOT_ALERT, "warning", f"the server needs a reboot to finish its "
                                        f"updates{why}", "send !reboot when it suits you (needs approval)",
                                        renotify=self.settings.reboot_reminder)
        else:
            await self.host.alerts.clear(REBOOT_ALERT, "the server no longer needs a reboot")

    async def _status(self) -> RebootStatus:
        try:
            return await self.flows.system()[1].reboot_status()
        except UserError:
            return RebootStatus()

    async def _say_in(self, intent: dict, reply: Reply) -> None:
        content = _with_notes(reply).content()
        if intent.get("event_id"):
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": intent["event_id"]}}
        for room in [intent["room_id"]] if intent.get("room_id") else self.host.admin_rooms():
            await self.host.outbox.send(room, content)


def _with_notes(reply: Reply) -> Reply:
    return reply + Reply.text("\n".join(REPORT_NOTES)) if REPORT_NOTES else reply


def _uptime_text(up: float | None) -> str:
    if up is None:
        return "uptime unknown"
    return f"up {up:.0f} s" if up < 600 else f"up {human_duration(up)}"
