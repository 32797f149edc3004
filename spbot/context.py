"""What a command sees: who asked, where, and the bot's services. Commands never touch Matrix events."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .render import Reply

if TYPE_CHECKING:
    from .bot import Bot
    from .feature import F
    from .registry import CommandSpec


class UserError(Exception):
    """A failure to report as is: `what` went wrong and `todo` says what to do next."""

    def __init__(self, what: str, todo: str = ""):
        super().__init__(what)
        self.what = what
        self.todo = todo

    def reply(self) -> Reply:
        return Reply.error(self.what, self.todo)


@dataclass
class Request:
    """One command as it arrived: the sender's words, identity and the event they came in."""
    sender: str
    device_id: str
    room_id: str
    event_id: str
    text: str
    sent_ts_ms: int
    received: float = field(default_factory=time.time)


@dataclass
class Context:
    bot: "Bot"
    request: Request
    spec: "CommandSpec"
    args: dict[str, Any]
    job: Any = None

    @property
    def sender(self) -> str:
        return self.request.sender

    @property
    def config(self):
        return self.bot.config

    @property
    def store(self):
        return self.bot.store

    def feature(self, kind: type[F]) -> F:
        """The running service of a feature, e.g. ctx.feature(Backups)."""
        return self.bot.feature(kind)

    async def say(self, reply: Reply) -> int:
        """Post a message (as a reply to the command) besides the final result; returns its local id."""
        return await self.bot.send_reply(self.request, reply)
