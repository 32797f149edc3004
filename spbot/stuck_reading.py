"""A bot that cannot read its rooms: a step of reading them (the sync, its device lists, a gap's history,
the batch's handling) failing the same way again and again while the homeserver answers. The step is
tried again for ever, as it must be (nothing may be skipped); but three such failures found this session
(a stranger's unreadable to-device message, spbot/nio_fixes.py) kept the bot deaf without a word to
anyone. A sync step watcher (spbot/matrix.py `step_watchers`): after STUCK_AFTER seconds of one failure
the admins are told, ringing them, and told again when it reads again.

Not its business: the homeserver unreachable (the connection's own outage handling), a disk that refuses
writes (spbot/cannot_write.py) and a damaged file (spbot/state_loss.py DamageWatch): each is told there."""
from __future__ import annotations

import time

from .cannot_write import cannot_write
from .homeserver_errors import offline
from .store import is_damage

READING_STEPS = frozenset({"sync", "device_lists", "gap_fill", "handle_batch"})
STUCK_AFTER = 120.0
ALERT_KEY = "reading:stuck"
TODO = ("Restart me (systemctl restart spbot). If it happens again, my log has the details "
        "(journalctl -u spbot, look for sync_step_still_failing): tell the other admins.")


class StuckReading:
    def __init__(self, alerts, clock=time.monotonic):
        self.alerts = alerts
        self.clock = clock
        self.failing: dict[str, tuple[type, float]] = {}     # step: (the error's kind, failing since)
        self.told = False

    async def failed(self, step: str, exc: BaseException) -> None:
        if step not in READING_STEPS or offline(exc) or cannot_write(exc) or is_damage(exc):
            self.failing.pop(step, None)
            return
        kind, since = self.failing.get(step, (type(exc), self.clock()))
        if kind is not type(exc):
            since = self.clock()
        self.failing[step] = (type(exc), since)
        if not self.told and self.clock() - since >= STUCK_AFTER:
            self.told = True
            minutes = max(2, round((self.clock() - since) / 60))
            await self.alerts.fire(ALERT_KEY, "critical", (
                f"I cannot read new messages: reading them has failed for {minutes} minutes "
                f"({type(exc).__name__}, at the {step.replace('_', ' ')} step). Commands sent to me now do not "
                "reach me; I keep trying."), TODO)

    async def succeeded(self, step: str) -> None:
        """Any reading step that succeeds means the steps before it did (the sync itself is not told
        its success: the step after it is)."""
        if step not in READING_STEPS:
            return
        self.failing.clear()
        if self.told:
            self.told = False
            await self.alerts.clear(ALERT_KEY, "I read new messages again.")
