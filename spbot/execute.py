"""The execute step: a parsed, allowed (or approved) command runs, inline or as a job, and ends in a reply
to the command and an audit row, whatever happens inside it. The one place where an expected failure
(a `UserError`, or an outside API's `ProviderError`) becomes the error reply, as it is: commands do not
translate them. The traceback of a crash goes to the log, never to chat."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from .audit import AuditEntry, AuditLog
from .context import Context
from .jobs import Job, JobRefused, JobRunner
from .logs import get_logger, redact
from .messenger import Messenger
from .providers.errors import ProviderError
from .registry import CommandSpec, invoke
from .render import Reply, human_duration
from .request import Request, UserError

log = get_logger(__name__)


class Executor:
    def __init__(self, messenger: Messenger, audit: AuditLog, jobs: JobRunner, prefix: str, host: Any):
        """`host`: what commands see as `ctx.bot` (the runtime), until every command uses the
        narrow accessors of its context."""
        self.messenger = messenger
        self.audit = audit
        self.jobs = jobs
        self.prefix = prefix
        self.host = host

    async def start_job(self, request: Request, spec: CommandSpec, args: dict[str, Any],
                        approvals: list[str] | None = None, request_id: int | None = None) -> Job | None:
        """Run the command as a job; None if the job runner refused it (the requester is told why)."""
        async def work(job: Job) -> tuple[str, Reply | None]:
            return await self.run(request, spec, args, approvals=approvals, job=job)
        try:
            return await self.jobs.run_command(request, spec, args, work, request_id)
        except JobRefused as exc:
            await self.messenger.reply(request, Reply.error(str(exc)))
            await self.audit.record(AuditEntry(
                request.sender, request.device_id, request.room_id, request.event_id, spec.name,
                spec.masked(args), "refused", str(exc), 0, approvals))
            return None

    async def run(self, request: Request, spec: CommandSpec, args: dict[str, Any], *,
                  started: float | None = None, approvals: list[str] | None = None, job: Any = None
                  ) -> tuple[str, Reply]:
        """Run the command, reply with its result and audit it; returns (result, reply)."""
        started = started if started is not None else time.monotonic()
        ctx = Context(self.host, request, spec, args, job=job)
        result, detail = "ok", ""
        try:
            reply = _as_reply(await invoke(spec, ctx, args))
        except (UserError, ProviderError) as exc:
            result, detail, reply = "failed", exc.what, Reply.error(exc.what, exc.todo)
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
            await self.messenger.reply(request, reply)
        await self.audit.record(AuditEntry(
            request.sender, request.device_id, request.room_id, request.event_id, spec.name,
            spec.masked(args), result, detail, duration_ms, approvals))
        log.info("command_done", command=spec.name, sender=request.sender, device=request.device_id,
                 result=result, ms=duration_ms)
        return result, reply


def _as_reply(value: Any) -> Reply | None:
    if value is None or isinstance(value, Reply):
        return value
    return Reply.text(str(value))
