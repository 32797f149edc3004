"""From an accepted request to a reply: parse → policy → run → reply → audit."""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from .audit import AuditEntry
from .context import Context, Request, UserError
from .jobs import Job, JobRefused
from .logs import get_logger, redact
from .registry import ArgError, CommandSpec, invoke, split_words
from .render import Reply, human_duration

if TYPE_CHECKING:
    from .bot import Bot

log = get_logger(__name__)


class Dispatcher:
    def __init__(self, bot: "Bot"):
        self.bot = bot
        self.prefix = bot.config.command_prefix

    async def handle(self, request: Request) -> None:
        started = time.monotonic()
        parsed = self._parse(request)
        if isinstance(parsed, Reply):
            await self.bot.send_reply(request, parsed)
            return
        spec, args = parsed
        policy = self.bot.policy_for(spec)
        if policy.needs_request:
            await self.bot.approvals.open(request, spec, args, policy)
        elif spec.job:
            await self.start_job(request, spec, args)
        else:
            await self.run(request, spec, args, started=started)

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
        typed = self.prefix + " ".join(words[:2])
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


def _as_reply(value: Any) -> Reply | None:
    if value is None or isinstance(value, Reply):
        return value
    return Reply.text(str(value))
