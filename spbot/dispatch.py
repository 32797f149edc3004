"""From an accepted request to a reply: lane → parse → policy → run → reply → audit.

Every command waits its turn in its sender's lane (spbot.lanes) and, once handled, for its replies to
leave the outbox before that sender's next command starts: one admin's flood then queues behind itself,
not in front of another admin's reply. Whatever goes wrong while a command is handled (parsing, policy,
approval request, job start or the command itself) ends in a reply and an audit row."""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from .audit import AuditEntry
from .context import Context, Request, UserError
from .jobs import Job, JobRefused
from .lanes import Admission, SenderLanes
from .logs import get_logger, redact
from .registry import ArgError, CommandSpec, Policy, clip, invoke, split_words
from .render import Reply, human_duration

if TYPE_CHECKING:
    from .bot import Bot

log = get_logger(__name__)


# How long a sender's next command waits at most for the replies before it to be sent (the homeserver
# may be slow or away; the outbox keeps the messages anyway).
REPLY_CATCH_UP_SECONDS = 5.0


class Dispatcher:
    def __init__(self, bot: "Bot", lanes: SenderLanes | None = None):
        self.bot = bot
        self.prefix = bot.config.command_prefix
        self.lanes = lanes or SenderLanes()

    async def handle(self, request: Request) -> None:
        """Handle one command in its sender's turn; never raises (except when the bot is stopping)."""
        lane = self.lanes.lane(request.sender)
        admission = lane.admit(backlog=request.sent_ts_ms / 1000 < self.bot.started)
        if admission in (Admission.REFUSE, Admission.REFUSE_AND_SAY):
            await self._refuse_flood(request, lane.waiting, say=admission is Admission.REFUSE_AND_SAY)
            self.lanes.forget_if_idle(request.sender)
            return
        warning = None
        if admission is Admission.RUN_AND_WARN:       # said beside the queueing, which keeps its place
            warning = asyncio.ensure_future(self._safely(self.bot.send_reply(request, Reply.text(
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
        parsed = self._parse(request)
        if isinstance(parsed, Reply):
            await self.bot.send_reply(request, parsed)
            return
        spec, args = parsed
        seen.update(spec=spec, args=args)
        policy = self.policy_for(spec, args)
        if policy.needs_request:
            await self.bot.approvals.open(request, spec, args, policy)
        elif spec.job:
            await self.start_job(request, spec, args)
        else:
            await self.run(request, spec, args, started=started)

    def policy_for(self, spec: CommandSpec, args: dict[str, Any]) -> Policy:
        """The configured (or declared) policy, made stricter by the command's `policy_when`."""
        return spec.policy_for(args, self.bot.policy_for(spec))

    async def _crashed(self, request: Request, spec: CommandSpec | None, args: dict[str, Any],
                       exc: Exception, started: float) -> None:
        """Called from the `except` that caught `exc`: log its traceback, reply and audit."""
        name = spec.name if spec is not None else _first_word(request.text, self.prefix)
        log.exception("command_handling_crashed", command=name, event_id=request.event_id)
        await self._safely(self.bot.send_reply(request, Reply.error(
            f"{self.prefix}{name} failed: an internal error ({exc.__class__.__name__}).",
            "The details are in the bot's log; see !jobs and !requests for what was started, "
            "and tell the other admins if it keeps failing.".replace("!", self.prefix))))
        await self._safely(self.bot.audit.record(AuditEntry(
            request.sender, request.device_id, request.room_id, request.event_id, name,
            spec.masked(args) if spec is not None else {}, "failed",
            f"{exc.__class__.__name__}: {redact(str(exc))[:200]}",
            int((time.monotonic() - started) * 1000))))

    async def _refuse_flood(self, request: Request, waiting: int, say: bool) -> None:
        name = _first_word(request.text, self.prefix)
        if say:
            await self._safely(self.bot.send_reply(request, Reply.error(
                f"too many of your commands are waiting ({waiting}): I did not run {self.prefix}{name}, "
                "and I refuse what you send until fewer are waiting.",
                "Each refused command is in the audit log; send it again once the others have "
                "answered.")))
        await self._safely(self.bot.audit.record(AuditEntry(
            request.sender, request.device_id, request.room_id, request.event_id, name, {}, "refused",
            f"too many commands waiting ({waiting})")))
        log.warning("command_refused_flood", sender=request.sender, waiting=waiting, event_id=request.event_id)

    async def _replies_sent(self) -> None:
        """Wait (a bounded time) until what is queued in the outbox now has been sent."""
        outbox = self.bot.outbox
        try:
            row = await self.bot.store.fetchone("SELECT MAX(id) AS id FROM outbox")
            if row is not None and row["id"] is not None:
                await outbox.event_id(row["id"], timeout=REPLY_CATCH_UP_SECONDS)
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

    async def start_job(self, request: Request, spec: CommandSpec, args: dict[str, Any],
                        approvals: list[str] | None = None, request_id: int | None = None) -> Job | None:
        try:
            return await self.bot.jobs.run_command(request, spec, args, approvals, request_id)
        except JobRefused as exc:
            await self.bot.send_reply(request, Reply.error(str(exc)))
            await self.bot.audit.record(AuditEntry(
                request.sender, request.device_id, request.room_id, request.event_id, spec.name,
                spec.masked(args), "refused", str(exc), 0, approvals))
            return None

    def _parse(self, request: Request) -> tuple[CommandSpec, dict[str, Any]] | Reply:
        registry = self.bot.registry
        try:
            words = split_words(request.text[len(self.prefix):])
        except ArgError as exc:
            return Reply.error(str(exc))
        if not words:
            return Reply.error("that is an empty command.", f"send {self.prefix}help for the list of commands.")
        spec, rest = registry.find(words)
        if spec is None:
            return self._unknown(words)
        try:
            return spec, spec.parse(rest)
        except ArgError as exc:
            return Reply.error(f"{exc}", f"usage: {spec.usage(self.prefix)}")

    def _unknown(self, words: list[str]) -> Reply:
        registry = self.bot.registry
        group = registry.group(words[0])
        if group:
            lines = [f"{self.prefix}{c.name} — {c.help}" for c in group]
            return Reply.text(f"{self.prefix}{words[0]} needs one of:\n" + "\n".join(lines))
        typed = self.prefix + clip(" ".join(words[:2]), 60)
        close = registry.suggest(words)
        hint = ("did you mean " + " or ".join(self.prefix + c for c in close) + "?") if close \
            else f"send {self.prefix}help for the list of commands."
        return Reply.error(f"unknown command {typed}", hint)

    async def run(self, request: Request, spec: CommandSpec, args: dict[str, Any], *,
                  started: float | None = None, approvals: list[str] | None = None, job: Any = None
                  ) -> tuple[str, Reply]:
        """Run the command, reply with its result and audit it; returns (result, reply)."""
        started = started if started is not None else time.monotonic()
        ctx = Context(self.bot, request, spec, args, job=job)
        result, detail = "ok", ""
        try:
            reply = _as_reply(await invoke(spec, ctx, args))
        except UserError as exc:
            result, detail, reply = "failed", exc.what, exc.reply()
        except asyncio.CancelledError:
            if job is None or job.cancelled_by is None:
                raise                          # the bot is stopping: the job will be reported interrupted
            result, detail = "cancelled", f"cancelled by {job.cancelled_by}"
            reply = Reply.text(f"🛑 {self.prefix}{spec.name} (job #{job.id}) was cancelled by "
                               f"{job.cancelled_by} after {human_duration(job.elapsed())}; "
                               f"its last step was: {job.step}.")
        except Exception as exc:  # the traceback goes to the log, never to chat
            log.exception("command_crashed", command=spec.name, event_id=request.event_id)
            result, detail = "failed", f"{exc.__class__.__name__}: {redact(str(exc))[:200]}"
            reply = Reply.error(f"{self.prefix}{spec.name} failed: an internal error "
                                f"({exc.__class__.__name__}).",
                                "Nothing more was done. The details are in the bot's log; try again, "
                                "and tell the other admins if it keeps failing.")
        duration_ms = int((time.monotonic() - started) * 1000)
        if reply is not None:
            await self.bot.send_reply(request, reply)
        await self.bot.audit.record(AuditEntry(
            request.sender, request.device_id, request.room_id, request.event_id, spec.name,
            spec.masked(args), result, detail, duration_ms, approvals))
        log.info("command_done", command=spec.name, sender=request.sender, device=request.device_id,
                 result=result, ms=duration_ms)
        return result, reply


def _first_word(text: str, prefix: str) -> str:
    """The command's first word, for a report about a line that may not even parse."""
    words = text[len(prefix):].split(maxsplit=1)
    return clip(words[0], 30) if words else "?"


def _as_reply(value: Any) -> Reply | None:
    if value is None or isinstance(value, Reply):
        return value
    return Reply.text(str(value))
