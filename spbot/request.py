"""A command as it arrived (`Request`) and a failure to report as is (`UserError`): the values every
step of the pipeline passes on. A leaf: it imports nothing of spbot, so any step may use it."""
from __future__ import annotations

import time
from dataclasses import dataclass, field


class UserError(Exception):
    """A failure to report as is: `what` went wrong and `todo` says what to do next."""

    def __init__(self, what: str, todo: str = ""):
        super().__init__(what)
        self.what = what
        self.todo = todo


@dataclass
class Request:
    """One command as it arrived: the sender's words, identity and the event they came in."""
    sender: str
    device_id: str
    room_id: str
    event_id: str
    text: str
    sent_ts_ms: int           # when sent, on this machine's clock (spbot/event_age.py), ms
    received: float = field(default_factory=time.time)
