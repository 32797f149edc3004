"""From an accepted request to its next step: lane → parse → policy → approval request, job or inline run.

Every command waits its turn in its sender's lane (spbot.lanes) and, once handled, for its replies to
leave the outbox before that sender's next command starts: one admin's flood then queues behind itself,
not in front of another admin's reply. Whatever goes wrong while a command is handled (parsing, policy,
approval request, job start or the command itself) ends in a reply and an audit row."""
from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any, Awaitable, Callable

from .approvals import Approvals
from .audit import AuditEntry, AuditLog
from .execute import Executor
from .lanes import Admission, SenderLanes
from .logs import get_logger, redact
from .messenger import Messenger
from .outbox import speaking_for
from .policy import Policies
from .parsing import ALL, Address, Addressing, first_word, parse_command
from .registry import CommandSpec, Policy, Registry, clip
from .render import Reply
from .request import Request

log = get_logger(__name__)


# How long a sender's next command waits at most for the replies before it to be sent (the homeserver
# may be slow or away; the outbox keeps the messages anyway).
REPLY_CATCH_UP_SECONDS = 5.0


class Dispatcher:
    def __init__(self, messenger: Messenger, audit: AuditLog, registry: Registry, policies: Policies,
                 approvals: Approvals, executor: Executor, *, prefix: str, started: float,
                 lanes: SenderLanes | None = None, addressing: Addressing | None = None):
        """`started`: when the bot started (a command sent before it is backlog)."""
        self.addressing = addressing or Addressing(None, {}, None, prefix, registry)
        # Set by the fleet package: async (request, reply) → None, this bot's answer to a command for
        # every bot, handed to the one that posts them all in one reply.
        self.fleet_answers: Callable[[Request, Reply], Awaitable[None]] | None = None
        self.messenger = messenger
        self.audit = audit
        self.registry = registry
        self.policies = policies
        self.approvals = approvals
        self.executor = executor
        self.prefix = prefix
        self.started = started
        self.lanes = lanes or SenderLanes()

    async def handle(self, request: Request) -> None:
        """Handle one command in its sender's turn; never raises (except when the bot is stopping)."""
        speaking_for.set(request.sender)      # what this command says waits behind no one else's flood
        lane = self.lanes.lane(request.sender)
        admission = lane.admit(backlog=request.sent_ts_ms / 1000 < self.started)
        if admission in (Admission.REFUSE, Admission.REFUSE_AND_SAY):
            await self._refuse_flood(request, lane.waiting, say=admission is Admission.REFUSE_AND_SAY)
            self.lanes.forget_if_idle(request.sender)
            return
        warning = None
        if admission is Admission.RUN_AND_WARN:       # said beside the queueing, which keeps its place
            warning = asyncio.ensure_future(self._safely(self.messenger.reply(request, Reply.text(
                f"slow down: {lane.waiting} of your commands are waiting; I'll take the rest after them, "
                f"in order (more than {lane.limit} waiting and I refuse new ones)."))))
        try:
            async with lane.turn():
                await self._handle_guarded(request)
                await self._replies_sent()
        finally:
            self.lanes.forget_if_idle(request.sender)
            if warning is not None:
                await warning

    async def _handle_guarded(self, request: Request) -> None:
        started = time.monotonic()
        seen: dict[str, Any] = {}          # what is known so far, for the crash report
        try:
            await self._handle(request, started, seen)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the traceback goes to the log, never to chat
            await self._crashed(request, seen.get("spec"), seen.get("args") or {}, exc, started)

    async def _handle(self, request: Request, started: float, seen: dict[str, Any]) -> None:
        address = self.addressing.split(request.text)
        if not self.addressing.known(address):
            await self.messenger.reply(request, self._unknown_host(address))
            return
        parsed = parse_command(address.text, self.registry, self.prefix)
        if isinstance(parsed, Reply):
            if address.target != ALL or self.addressing.is_default():     # said once, not by every bot
                await self.messenger.reply(request, parsed)
            return
        spec, args = parsed
        seen.update(spec=spec, args=args)
        policy = self.policy_for(spec, args)
        if self.addressing.fleet and not await self._route(request, address, spec, policy):
            return
        if address.explicit:          # what runs (and is approved, and re-read after a restart) is the command
            request = replace(request, text=address.text)
        try:
            await self._run(request, spec, args, policy, started)
        finally:
            if not spec.job:
                self.messenger.routes.pop(request.event_id, None)

    async def _run(self, request: Request, spec: CommandSpec, args: dict[str, Any], policy: Policy,
                   started: float) -> None:
        if policy.needs_request:
            await self.approvals.open(request, spec, args, policy)
        elif spec.job:
            await self.executor.start_job(request, spec, args)
        else:
            await self.executor.run(request, spec, args, started=started)

    async def _route(self, request: Request, address: Address, spec: CommandSpec, policy: Policy) -> bool:
        """In a fleet room: whether this bot runs the command, and where its reply goes (False: it does
        not run here, and the room's default bot has said why)."""
        one_host = address.target not in ("", ALL) and not self.addressing.fleet_wide(address)
        if (spec.dangerous or policy.needs_request) and not one_host:
            if self.addressing.is_default():
                await self.messenger.reply(request, Reply.error(
                    f"{self.prefix}{spec.name} changes a server: name exactly one host.",
                    f"send {self.prefix}on <host> {spec.name} …; the hosts here: "
                    f"{', '.join(self.addressing.hosts)}."))
            return False
        if (address.target == ALL or self.addressing.fleet_wide(address)) and self.fleet_answers is not None:
            answers = self.fleet_answers

            async def gathered(reply: Reply) -> None:
                await answers(request, reply)
            self.messenger.routes[request.event_id] = gathered
        elif not address.explicit:
            self.messenger.routes[request.event_id] = self._with_hint(spec)
        return True

    def _with_hint(self, spec: CommandSpec):
        others = [h for h in self.addressing.hosts if h != self.addressing.me]
        hint = (f"(answered by {self.addressing.me}, this room's default; for another server send "
                f"{self.prefix}on {others[0] if others else '<host>'} {spec.name}, for every server "
                f"{self.prefix}all {spec.name})")

        async def add_hint(reply: Reply) -> Reply:
            return reply + Reply.text(hint)
        return add_hint

    def _unknown_host(self, address: Address) -> Reply:
        return Reply.error(f"no bot here is called {clip(address.target, 30)}.",
                           f"the hosts in this room: {', '.join(self.addressing.hosts) or '(none named)'}; "
                           f"send {self.prefix}on <host> <command> or {self.prefix}all <command>.")

    def policy_for(self, spec: CommandSpec, args: dict[str, Any]) -> Policy:
        """The configured (or declared) policy, made stricter by the command's `policy_when`."""
        return self.policies.for_command(spec, args)

    async def run(self, request: Request, spec: CommandSpec, args: dict[str, Any], **options: Any):
        """Run a command inline, now (spbot/execute.py); for a command that runs another one it has
        already authorised (commands/trust.py)."""
        return await self.executor.run(request, spec, args, **options)

    async def _crashed(self, request: Request, spec: CommandSpec | None, args: dict[str, Any],
                       exc: Exception, started: float) -> None:
        """Called from the `except` that caught `exc`: log its traceback, reply and audit."""
        name = spec.name if spec is not None else first_word(request.text, self.prefix)
        log.exception("command_handling_crashed", command=name, event_id=request.event_id)
        await self._safely(self.messenger.reply(request, Reply.error(
            f"{self.prefix}{name} failed: an internal error ({exc.__class__.__name__}).",
            "The details are in the bot's log; see !jobs and !requests for what was started, "
            "and tell the other admins if it keeps failing.".replace("!", self.prefix))))
        await self._safely(self.audit.record(AuditEntry(
            request.sender, request.device_id, request.room_id, request.event_id, name,
            spec.masked(args) if spec is not None else {}, "failed",
            f"{exc.__class__.__name__}: {redact(str(exc))[:200]}",
            int((time.monotonic() - started) * 1000))))

    async def _refuse_flood(self, request: Request, waiting: int, say: bool) -> None:
        name = first_word(request.text, self.prefix)
        if say:
            await self._safely(self.messenger.reply(request, Reply.error(
                f"too many of your commands are waiting ({waiting}): I did not run {self.prefix}{name}, "
                "and I refuse what you send until fewer are waiting.",
                "Each refused command is in the audit log; send it again once the others have "
                "answered.")))
        await self._safely(self.audit.record(AuditEntry(
            request.sender, request.device_id, request.room_id, request.event_id, name, {}, "refused",
            f"too many commands waiting ({waiting})")))
        log.warning("command_refused_flood", sender=request.sender, waiting=waiting, event_id=request.event_id)

    async def _replies_sent(self) -> None:
        """Wait (a bounded time) until what is queued in the outbox now has been sent."""
        try:
            await self.messenger.caught_up(REPLY_CATCH_UP_SECONDS)
        except asyncio.CancelledError:
            raise
        except Exception as exc:     # a timeout or a store problem: the next command goes ahead anyway
            log.debug("reply_catch_up_skipped", reason=exc.__class__.__name__)

    async def _safely(self, work) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dispatch_report_failed")
