"""One job runner for chat commands and scheduled work: job ids, named locks, one progress message
edited in place, `!cancel`, and jobs cut short by a bot stop reported as interrupted (never re-run).
The runner knows nothing of commands: it is handed the work to run (spbot/execute.py hands it a command's
run) and tells whoever listens (`on_finish`, e.g. approvals) how each job ended."""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from .config import Config
from .logs import get_logger
from .messenger import Messenger
from .outbox import speaking_for
from .render import Reply, bar, escape, human_duration
from .request import Request
from .store import Store
from .system import children

if TYPE_CHECKING:
    from .registry import CommandSpec

log = get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    command TEXT NOT NULL,
    args TEXT NOT NULL,
    requester TEXT NOT NULL,
    room_id TEXT,
    event_id TEXT,
    request_id INTEGER,
    locks TEXT NOT NULL,
    state TEXT NOT NULL,          -- waiting | running | done | failed | cancelled | interrupted
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    summary TEXT,
    progress_message INTEGER
);
"""
# `!jobs` and the duplicate check read the unfinished jobs through this index and the newest by id, so
# their cost does not grow with the history; finished jobs beyond the newest KEPT_JOBS are deleted.
INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_unfinished ON jobs(command) WHERE state IN ('waiting','running');
CREATE INDEX IF NOT EXISTS jobs_untold ON jobs(id) WHERE told = 0;
"""
KEPT_JOBS = 100_000
PRUNE_EVERY = 1_000                 # jobs created between two prunings
ICONS = {"running": "⏳", "waiting": "⏸", "done": "✅", "failed": "❌", "cancelled": "🛑",
         "interrupted": "⚠️"}
SCHEDULER = "scheduler"
CUT_KEY = "children_cut"            # kv: what a start ended of a dead predecessor's, until it is told
WENT_ON = "it went on after the state the bot started from was saved: the room shows how it ended"


class JobRefused(Exception):
    """The job cannot start (the same work is already under way); the message says so."""


@dataclass
class Job:
    """A running piece of work; `progress` edits one message in the room, at most every few seconds."""
    id: int
    title: str
    requester: str
    room_id: str | None
    reply_to: str | None
    locks: frozenset[str]
    runner: "JobRunner"
    started: float = field(default_factory=time.monotonic)
    step: str = "starting"
    fraction: float | None = None
    lines: list[str] = field(default_factory=list)
    cancelled_by: str | None = None
    request_id: int | None = None
    _message: int | None = None
    _last_edit: float = 0.0
    _flush: asyncio.Task | None = None

    async def expect_interruption(self, why: str) -> None:
        """This job will probably outlive the bot (it reboots the machine): if the bot stops during it,
        say so as expected at the next start instead of reporting a failure."""
        await self.runner.store.execute("UPDATE jobs SET expected_stop = ? WHERE id = ?", (why, self.id))

    async def progress(self, step: str | None = None, fraction: float | None = None,
                       lines: list[str] | None = None) -> None:
        """Report where the job is: step text, done fraction (0..1), and optional log lines."""
        if step is not None:
            self.step = step
        if fraction is not None:
            self.fraction = min(max(fraction, 0.0), 1.0)
        if lines is not None:
            self.lines = lines[-12:]
        await self.runner.show_progress(self)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def render(self, state: str = "running", summary: str = "") -> Reply:
        head = f"{ICONS[state]} {self.title} — job #{self.id}"
        if state == "running":
            parts = [f"{bar(self.fraction)} {self.fraction * 100:.0f}%"] if self.fraction is not None else []
            parts += [self.step, human_duration(self.elapsed())]
            status = " · ".join(p for p in parts if p)
        else:
            status = f"{state} after {human_duration(self.elapsed())}" + (f": {summary}" if summary else "")
        body = f"{head}\n{status}"
        html = f"<b>{escape(head)}</b><br>{escape(status)}"
        if self.lines and state in ("running", "failed"):
            body += "\n" + "\n".join(self.lines)
            html += "<pre><code>" + escape("\n".join(self.lines)) + "</code></pre>"
        return Reply(body, html)


# What a job runs: given the job (for progress), it returns ("ok" | "failed" | "cancelled", the reply).
Work = Callable[[Job], Awaitable[tuple[str, Reply | None]]]


class JobRunner:
    def __init__(self, store: Store, messenger: Messenger, config: Config,
                 spawn: Callable[[Awaitable[Any], str], asyncio.Task]):
        self.store = store
        self.messenger = messenger
        self.config = config
        self.spawn = spawn
        self.tasks: dict[int, asyncio.Task] = {}
        self.jobs: dict[int, Job] = {}
        self.held: dict[str, int] = {}
        # async (job_id, request_id, state) callbacks, e.g. approvals updating their request message
        self.on_finish: list[Callable[[int, int | None, str], Awaitable[None]]] = []
        self._lock_change = asyncio.Condition()
        self.told = asyncio.Event()         # the jobs cut short are told: what follows them may be said

    async def start(self) -> None:
        """Before any new work: end what a killed predecessor left running (and remove the password
        files older versions left), write down every child from now on, and mark the jobs it cut short
        (reported once the rooms are read: report_interrupted)."""
        await self.prepare_store()
        await self._prune()
        state_dir = self.config.state_dir
        leftovers = await asyncio.to_thread(children.end_leftovers, state_dir)
        await self.store.execute("UPDATE jobs SET state = 'interrupted', ended = ?, summary = ?, told = 0 "
                                 "WHERE state IN ('waiting','running')", (time.time(), "the bot stopped while it ran"))
        await self._keep_cut(leftovers or [])          # before the record of them is started anew
        children.start_recording(state_dir)
        await asyncio.to_thread(children.remove_old_password_files, state_dir)

    async def _keep_cut(self, leftovers: list[children.Leftover]) -> None:
        """What this start ended, in the state until report_interrupted tells it: a bot stopped again
        before it could (the homeserver down at start, say) tells it at a later start."""
        if not leftovers:
            return
        untold = {row["id"] for row in await self.store.fetchall(
            "SELECT id FROM jobs INDEXED BY jobs_untold WHERE told = 0")}
        cut = await self._cut_so_far()
        for left in leftovers:
            if left.job in untold:
                cut["jobs"].setdefault(str(left.job), []).append(left.sentence())
            elif left.was_running:
                cut["stray"].append(left.sentence())
        await self.store.put(CUT_KEY, cut)

    async def _cut_so_far(self) -> dict:
        """{"jobs": {job id: [sentences]}, "stray": [sentences]}: what starts ended and did not tell yet."""
        return await self.store.get(CUT_KEY) or {"jobs": {}, "stray": []}

    async def prepare_store(self) -> None:
        await self.store.ensure_schema(SCHEMA)
        await self.store.add_columns("jobs", {"expected_stop": "TEXT", "told": "INTEGER"})
        await self.store.ensure_schema(INDEXES)

    async def _prune(self) -> None:
        await self.store.execute(
            "DELETE FROM jobs WHERE id <= (SELECT MAX(id) FROM jobs) - ? AND state NOT IN ('waiting','running')",
            (KEPT_JOBS,))

    # --- starting work -------------------------------------------------------------------------

    async def run_command(self, request: Request, spec: "CommandSpec", args: dict[str, Any], work: Work,
                          request_id: int | None = None) -> Job:
        """Start `work` for a chat command as a job (in the background); refuses a second copy of
        locked work (JobRefused)."""
        title = self.config.command_prefix + spec.name
        await self._refuse_duplicate(spec.name, spec.locks)
        job = await self._create(title, spec.name, spec.masked(args), request.sender, request.room_id,
                                 request.event_id, spec.locks, request_id)
        self._launch(job, lambda: work(job))
        return job

    async def run_scheduled(self, name: str, func: Callable[[Job], Awaitable[Reply | None]],
                            locks: frozenset[str] = frozenset(), room_id: str | None = None) -> Job:
        """Scheduled work as a job with the scheduler as requester; its reply goes to the admin rooms
        only if it returns one (success can stay quiet)."""
        await self._refuse_duplicate(name, locks)
        job = await self._create(name, name, {}, SCHEDULER, room_id, None, locks, None)

        async def work() -> tuple[str, Reply | None]:
            reply = await func(job)
            if reply is not None:
                await self.messenger.notify(reply, [room_id] if room_id else None)
            return "ok", reply
        self._launch(job, work)
        return job

    async def _refuse_duplicate(self, command: str, locks: frozenset[str]) -> None:
        if not locks:
            return
        row = await self.store.fetchone(
            "SELECT id, requester, created FROM jobs INDEXED BY jobs_unfinished "
            "WHERE command = ? AND state IN ('waiting','running')",
            (command,))
        if row is not None:
            raise JobRefused(f"{command} is already under way as job #{row['id']} (asked by "
                             f"{row['requester']} {human_duration(time.time() - row['created'])} ago); "
                             f"see !jobs, or !cancel {row['id']}")

    async def _create(self, title: str, command: str, args: dict, requester: str, room_id: str | None,
                      event_id: str | None, locks: frozenset[str], request_id: int | None) -> "Job":
        job_id = await self.store.insert(
            "INSERT INTO jobs(title, command, args, requester, room_id, event_id, request_id, locks, state,"
            " created) VALUES(?, ?, ?, ?, ?, ?, ?, ?, 'waiting', ?)",
            (title, command, json.dumps(args), requester, room_id, event_id, request_id,
             json.dumps(sorted(locks)), time.time()))
        if job_id % PRUNE_EVERY == 0:
            await self._prune()
        job = Job(job_id, title, requester, room_id, event_id, frozenset(locks), self)
        job.request_id = request_id
        self.jobs[job_id] = job
        return job

    def _launch(self, job: Job, work: Callable[[], Awaitable[tuple[str, Reply | None]]]) -> None:
        async def lifecycle() -> None:
            children.current_job.set(job.id)          # the job's programs are recorded under its id
            # It speaks in its requester's outbox lane, not in that of whoever approved it: its result
            # then leaves before its request's last edit (in the requester's lane), never after it.
            speaking_for.set("" if job.requester == SCHEDULER else job.requester)
            await self._acquire(job)
            try:
                await self.store.execute("UPDATE jobs SET state = 'running', started = ? WHERE id = ?",
                                         (time.time(), job.id))
                job.started = time.monotonic()
                result, reply = await work()
                state = {"ok": "done", "cancelled": "cancelled"}.get(result, "failed")
                summary = (reply.body.splitlines()[0] if reply and reply.body else "")[:300]
                await self._finish(job, state, summary)
            finally:
                await self._release(job)
        task = self.spawn(lifecycle(), name=f"job {job.id}")
        self.tasks[job.id] = task
        task.add_done_callback(lambda _: self.tasks.pop(job.id, None))

    async def _finish(self, job: Job, state: str, summary: str) -> None:
        await self.store.execute("UPDATE jobs SET state = ?, ended = ?, summary = ? WHERE id = ?",
                                 (state, time.time(), summary, job.id))
        if job._flush is not None:
            job._flush.cancel()
        if job._message is not None:
            await self.messenger.edit(job._message, job.render(state, summary))
        self.jobs.pop(job.id, None)
        log.info("job_ended", job=job.id, title=job.title, state=state)
        for callback in self.on_finish:
            await callback(job.id, job.request_id, state)

    # --- locks ---------------------------------------------------------------------------------

    async def _acquire(self, job: Job) -> None:
        async with self._lock_change:
            announced = False
            while any(name in self.held for name in job.locks):
                if not announced:
                    holder = self.jobs.get(next(self.held[n] for n in job.locks if n in self.held))
                    await job.progress(f"waiting for job #{holder.id} ({holder.title}) to finish"
                                       if holder else "waiting for another job to finish")
                    announced = True
                await self._lock_change.wait()
            for name in job.locks:
                self.held[name] = job.id

    async def _release(self, job: Job) -> None:
        async with self._lock_change:
            for name in job.locks:
                if self.held.get(name) == job.id:
                    del self.held[name]
            self._lock_change.notify_all()

    # --- progress ------------------------------------------------------------------------------

    async def show_progress(self, job: Job) -> None:
        if job._message is None:
            job._last_edit = time.monotonic()
            rooms = [job.room_id] if job.room_id else self.messenger.admin_rooms()[:1]
            job._message = await self.messenger.send(rooms[0], job.render(), in_reply_to=job.reply_to)
            await self.store.execute("UPDATE jobs SET progress_message = ? WHERE id = ?",
                                     (job._message, job.id))
            return
        wait = self.config.progress_interval - (time.monotonic() - job._last_edit)
        if wait <= 0:
            await self._edit(job)
        elif job._flush is None or job._flush.done():
            job._flush = asyncio.create_task(self._edit_later(job, wait))

    async def _edit_later(self, job: Job, wait: float) -> None:
        await asyncio.sleep(wait)
        await self._edit(job)

    async def _edit(self, job: Job) -> None:
        job._last_edit = time.monotonic()
        await self.messenger.edit(job._message, job.render())

    # --- cancel, listing, restart --------------------------------------------------------------

    async def cancel(self, job_id: int, by: str) -> str:
        task, job = self.tasks.get(job_id), self.jobs.get(job_id)
        if task is None or job is None:
            row = await self.store.fetchone("SELECT state FROM jobs WHERE id = ?", (job_id,))
            raise LookupError(f"job #{job_id} is not running" + (f" (it is {row['state']})" if row else
                                                                  " (no such job)"))
        job.cancelled_by = by
        task.cancel()
        return f"cancelling job #{job_id} ({job.title})"

    async def recent(self, limit: int = 10) -> list[dict]:
        """The newest `limit` jobs and every unfinished one, newest first."""
        rows = await self.store.fetchall(
            "SELECT * FROM (SELECT * FROM jobs ORDER BY id DESC LIMIT ?) UNION "
            "SELECT * FROM jobs INDEXED BY jobs_unfinished WHERE state IN ('waiting','running') "
            "ORDER BY id DESC", (limit,))
        return [dict(r) for r in rows]

    async def report_interrupted(self, went_on: set[str] = frozenset()) -> None:
        """Every job the bot stopped during (never re-run), reported in its room with the programs it had
        running and what became of them; but a job whose command the rooms show answered by a state put
        back since (`went_on`, its event ids: spbot/rolled_back.py) went on there, and is not told."""
        cut = await self._cut_so_far()
        for row in await self.store.fetchall("SELECT * FROM jobs INDEXED BY jobs_untold WHERE told = 0"):
            if row["event_id"] in went_on:
                await self._went_on(row)
            else:
                await self._tell_interrupted(row, [f"• {line}" for line in cut["jobs"].get(str(row["id"]), [])])
            await self.store.execute("UPDATE jobs SET told = 1 WHERE id = ?", (row["id"],))
        await self._report_stray_children(cut["stray"])
        await self.store.execute("DELETE FROM kv WHERE key = ?", (CUT_KEY,))
        self.told.set()

    async def _went_on(self, row) -> None:
        """A job a state put back since saw on: the room shows how it ended; nothing is said or edited."""
        await self.store.execute("UPDATE jobs SET summary = ? WHERE id = ?", (WENT_ON, row["id"]))
        log.warning("job_went_on_since", job=row["id"], title=row["title"])
        for callback in self.on_finish:
            await callback(row["id"], row["request_id"], "settled")

    async def _tell_interrupted(self, row, cut: list[str]) -> None:
        """In the job's room (every admin room for the scheduler's): it ended with the bot's stop, with what
        became of its programs (`cut`); its request and its progress message say so too."""
        log.warning("job_interrupted", job=row["id"], title=row["title"], expected=bool(row["expected_stop"]))
        if row["expected_stop"]:
            reply = Reply.text(f"job #{row['id']} ({row['title']}, asked by {row['requester']}) ended "
                               f"when the bot stopped, as expected: {row['expected_stop']}.")
        else:
            reply = Reply.error(
                f"job #{row['id']} ({row['title']}, asked by {row['requester']}) was interrupted: "
                "the bot stopped while it was running. It was not started again.",
                "Check what it left behind (!status, !jobs) and run it again if it is still needed.")
            reply = reply.to(self._who_must_look(row["requester"]))     # it needs a person: it rings
        if cut:
            reply = reply + Reply.text("\n".join(cut))
        for room in [row["room_id"]] if row["room_id"] else self.messenger.admin_rooms():
            await self.messenger.send(room, reply, in_reply_to=row["event_id"] or None)
        for callback in self.on_finish:
            await callback(row["id"], row["request_id"], "interrupted")
        if row["progress_message"]:
            stub = Job(row["id"], row["title"], row["requester"], None, None, frozenset(), self)
            stub.started = time.monotonic() - (time.time() - (row["started"] or row["created"]))
            await self.messenger.edit(row["progress_message"], stub.render("interrupted", "the bot stopped"))

    def _who_must_look(self, requester: str) -> list[str]:
        """The admin who asked for an interrupted job, or every admin for the scheduler's."""
        return [requester] if requester in self.config.admins else list(self.config.admins)

    async def _report_stray_children(self, sentences: list[str]) -> None:
        """Programs of no interrupted job that were still running at this start (and now ended)."""
        if not sentences:
            return
        lines = [f"• {sentence}" for sentence in sentences]
        reply = Reply.error("When the bot stopped, programs it had started outside any job were still "
                            "running; they were found at this start:") + Reply.text("\n".join(lines))
        for room in self.messenger.admin_rooms():
            await self.messenger.send(room, reply)
