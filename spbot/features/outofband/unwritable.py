"""The bot's own disk cannot be written while it runs (full, failing): the room is told at once
(spbot/cannot_write.py), but the relay keeps its queue in the state database, so it cannot carry this
alert, and the homeserver on that disk may be down too. A sync step watcher (spbot/matrix.py) sends it
through the channels directly, with no disk, once it has lasted the grace time; and says when writes
work again."""
from __future__ import annotations

import socket
import time
from pathlib import Path

from ...cannot_write import cannot_write, reason, usage, writable
from .channels import Channel, send_all
from .settings import OutOfBandSettings


class UnwritableWatch:
    def __init__(self, channels: list[Channel], settings: OutOfBandSettings, state_dir: Path):
        self.channels, self.settings, self.state_dir = channels, settings, Path(state_dir)
        self.since: float | None = None       # monotonic: when writes first failed
        self.sent = False

    async def failed(self, step: str, exc: BaseException) -> None:
        if not cannot_write(exc):
            return
        now = time.monotonic()
        self.since = now if self.since is None else self.since
        if self.sent or now - self.since < (0 if self.settings.always else self.settings.grace):
            return
        self.sent = True
        await self._send("cannot write", (
            f"I cannot write to my state directory {self.state_dir} ({reason(exc)}) on {socket.gethostname()}, "
            f"so I take no commands until I can. {usage(self.state_dir)} Free space there (df -h "
            f"{self.state_dir}): I go on by myself once I can write."))

    async def succeeded(self, step: str) -> None:
        if self.since is None or not writable(self.state_dir):
            return
        if self.sent:
            await self._send("can write again", f"I can write to {self.state_dir} again on "
                                                f"{socket.gethostname()}: I am taking commands.")
        self.since, self.sent = None, False

    async def _send(self, what: str, text: str) -> None:
        await send_all(self.channels, f"{self.settings.title}: {what}", text)
