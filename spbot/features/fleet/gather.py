"""A command for every bot, answered once: each bot sends its answer on the bots' channel, and one bot
(the room's default, or, when the default is silent, the first to answer) posts a single reply with
every host's answer and the hosts that did not answer in time."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Collection

from spbot.logs import get_logger
from spbot.render import Reply

from .wire import FleetEvent, Wire

log = get_logger(__name__)
ANSWER, GATHERED = "answer", "gathered"
STAND_IN_GRACE = 2.0            # seconds a stand-in waits past the timeout for the default's word
MAX_ANSWER_CHARS = 6000           # one host's share of the gathered reply


@dataclass
class Gathering:
    room_id: str
    request: str                   # the command's event id
    command: str
    first_seen: float = field(default_factory=time.monotonic)
    answers: dict[str, Reply] = field(default_factory=dict)       # host → answer, in room order
    done: asyncio.Event = field(default_factory=asyncio.Event)
    posting: bool = False


class Gatherer:
    def __init__(self, host: Any, wire: Wire, hosts: list[str], default: str, timeout: float,
                 live: Callable[[], Collection[str]], silence: Callable[[str], str]):
        self.host = host
        self.wire = wire
        self.hosts = hosts
        self.default = default
        self.timeout = timeout
        self.live = live                    # the hosts heard from lately
        self.silence = silence              # host → "silent for 12 min" (or "")
        self.open: dict[str, Gathering] = {}
        self.posted: dict[str, float] = {}
        self.gathered_by_default: set[str] = set()      # requests the default said it answers

    async def publish(self, request, reply: Reply) -> None:
        """This bot's answer to a command for every bot (called instead of replying to it)."""
        command = request.text.strip()[:200]
        await self.wire.send(request.room_id, ANSWER, request=request.event_id, command=command,
                             body=reply.body[:MAX_ANSWER_CHARS], html=reply.html[:MAX_ANSWER_CHARS * 2])

    async def on_answer(self, event: FleetEvent) -> None:
        request = event.content.get("request")
        if not isinstance(request, str) or request in self.posted:
            return
        if time.time() - event.ts > max(60.0, self.timeout * 3):      # history after a restart
            return
        g = self.open.get(request)
        if g is None:
            g = self.open[request] = Gathering(event.room_id, request, str(event.content.get("command", "")))
        g.answers.setdefault(event.host, Reply(str(event.content.get("body", "")),
                                               str(event.content.get("html", ""))))
        expected = set(self.hosts) & (set(self.live()) | {self.wire.me})     # the silent will not answer
        if expected <= set(g.answers):
            g.done.set()
        me = self.wire.me
        if not g.posting and (me == self.default or next(iter(g.answers)) == me):
            g.posting = True
            self.host.spawn(self._post_when_done(g, standing_in=me != self.default),
                            name=f"fleet gather {request}")

    async def _post_when_done(self, g: Gathering, standing_in: bool) -> None:
        """The default posts once every host answered or at the timeout, and tells the others first;
        the first to answer posts in its place only if the default has not said so by then (it is down
        or cut off)."""
        remaining = self.timeout - (time.monotonic() - g.first_seen)
        try:
            await asyncio.wait_for(g.done.wait(), max(0.0, remaining))
        except asyncio.TimeoutError:
            pass
        if standing_in:
            await asyncio.sleep(STAND_IN_GRACE)
        self.posted[g.request] = time.monotonic()        # late answers start no second gathering
        self.open.pop(g.request, None)
        self._forget_old()
        if standing_in and g.request in self.gathered_by_default:
            return
        if not standing_in:                             # said first, so that no stand-in posts too
            await self.wire.send(g.room_id, GATHERED, request=g.request)
        await self.host.outbox.send(g.room_id, self.render(g).content(in_reply_to=g.request))
        log.info("fleet_gathered", request=g.request, answered=len(g.answers), hosts=len(self.hosts))

    def on_gathered(self, event: FleetEvent) -> None:
        if event.host == self.default and isinstance(event.content.get("request"), str):
            self.gathered_by_default.add(event.content["request"])
            if len(self.gathered_by_default) > 1000:
                self.gathered_by_default.clear()

    def render(self, g: Gathering) -> Reply:
        answered = [h for h in self.hosts if h in g.answers]
        missing = [h for h in self.hosts if h not in g.answers]
        head = Reply.text(f"{g.command} — {len(answered)} of {len(self.hosts)} servers answered")
        reply = head
        for name in answered:
            answer = g.answers[name]
            one_line = "\n" not in answer.body
            if one_line:
                reply = reply + Reply(f"[{name}] {answer.body}", f"<b>[{name}]</b> {answer.html}")
            else:
                reply = reply + Reply(f"[{name}]\n{answer.body}", f"<b>[{name}]</b><br>{answer.html}")
        if missing:
            said = [f"{h} ({self.silence(h)})" if self.silence(h) else h for h in missing]
            reply = reply + Reply.text("no answer in time: " + ", ".join(said))
        return reply

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - 3600
        for request in [r for r, at in self.posted.items() if at < cutoff]:
            del self.posted[request]
