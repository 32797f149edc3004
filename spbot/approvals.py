"""N-of-M approvals in the room, after Teleport's access requests: other admins approve (✅ reaction or
!approve), the requester's own vote never counts, one deny ends it, requests expire, and an approved
request runs exactly once as a job. Votes count only in the room the request was asked in. The request's
words (command, arguments, reasons) are shown quoted, on one line, with invisible and bidi characters
made visible, so a crafted argument cannot draw a fake line of the bot's own. State lives in SQLite, so a
restart keeps requests and votes.

Approvals know nothing of how a command runs: an approved request is handed to `start` (the runtime's
job start, spbot/execute.py), and how its job ended comes back through `job_finished`."""
from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any, Awaitable, Callable
from zoneinfo import ZoneInfo

from nio import MatrixRoom, ReactionEvent, RedactionEvent

from .votes import APPROVE_KEYS, DENY_KEYS  # noqa: F401  (re-exported: the keys of a vote)
from .audit import AuditEntry, AuditLog
from .config import Config
from .logs import get_logger, register_secret
from .messenger import Messenger
from .registry import CommandSpec, Policy, Registry, split_words
from .approval_text import Line, Preview, esc
from .render import Reply, human_duration, pill, quote_user_text
from .request import Request
from .store import Store

log = get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    command TEXT NOT NULL,
    text TEXT NOT NULL,
    args TEXT NOT NULL,
    requester TEXT NOT NULL,
    device_id TEXT,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    sent_ts_ms INTEGER NOT NULL,
    needed INTEGER NOT NULL,
    confirm INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,   -- pending | running | done | failed | cancelled | denied | expired | interrupted
                           -- | settled (decided after a state put back)
    created REAL NOT NULL,
    expires REAL NOT NULL,
    message_id INTEGER,
    decided_by TEXT,
    reason TEXT,
    job_id INTEGER
);
CREATE TABLE IF NOT EXISTS votes (
    request_id INTEGER NOT NULL REFERENCES requests(id),
    voter TEXT NOT NULL,
    approve INTEGER NOT NULL,
    event_id TEXT,
    ts REAL NOT NULL,
    PRIMARY KEY (request_id, voter)
);
"""
JOB_STATE_TO_REQUEST = {"done": "done", "failed": "failed", "cancelled": "cancelled",
                        "interrupted": "interrupted"}


# Starts an approved command as a job: (request, spec, args, approvers, request id) -> the job (with
# its `id`), or None when it was refused (the requester has been told why).
Start = Callable[[Request, CommandSpec, dict[str, Any], list[str], int], Awaitable[Any]]


class Approvals:
    def __init__(self, store: Store, messenger: Messenger, audit: AuditLog, config: Config,
                 registry: Registry, *, start: Start,
                 eligible_approvers: Callable[[str], Awaitable[list[str]]],
                 preview: Callable[[CommandSpec, dict[str, Any]], Awaitable[str]],
                 before_vote: Callable[[], Awaitable[None]],
                 spawn: Callable[[Awaitable[Any], str], Any]):
        """`eligible_approvers(requester)`: the other admins whose vote can count now; `preview(spec,
        args)`: the command's own preview; `before_vote()`: runs before a reaction counts (the replay
        guard writes down its ciphertext)."""
        self.store = store
        self.messenger = messenger
        self.audit = audit
        self.config = config
        self.registry = registry
        self._start = start
        self._eligible = eligible_approvers
        self._previewer = preview
        self._before_vote = before_vote
        self._spawn = spawn
        self._lock = asyncio.Lock()      # one vote at a time: counting and starting is atomic
        self._secrets: dict[int, dict[str, str]] = {}   # request id -> its secret arguments, never stored
        self._opened = asyncio.Event()   # a new request: its expiry may come before the one waited for

    async def start(self) -> None:
        """Before the job runner starts (it reports interrupted jobs to `job_finished`)."""
        await self.store.ensure_schema(SCHEMA)
        await self._ended_before_the_stop()
        await self._stopped_before_the_job()
        self._spawn(self._expire_loop(), name="approval expiry")

    async def _ended_before_the_stop(self) -> None:
        """Requests whose job ended, with the bot stopped before the request was told (a quick job, a kill
        right after it; CI caught one): told now, as job_finished would have. A job still marked running
        is the job runner's to report."""
        if not await self.store.fetchone("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"):
            return                        # the job runner has never started here: no job ran
        for row in await self.store.fetchall("SELECT id, job_id FROM requests WHERE state = 'running'"):
            job = await self._job_of(row)
            if job is not None and job["state"] in JOB_STATE_TO_REQUEST:
                await self.job_finished(job["id"], row["id"], job["state"])

    async def _job_of(self, row):
        if row["job_id"] is not None:
            return await self.store.fetchone("SELECT id, state FROM jobs WHERE id = ?", (row["job_id"],))
        return await self.store.fetchone(          # its number was not noted before the stop
            "SELECT id, state FROM jobs WHERE request_id = ? ORDER BY id DESC LIMIT 1", (row["id"],))

    async def _stopped_before_the_job(self) -> None:
        """Requests approved when the bot was stopped before their job was recorded: nothing ran (a job
        that did start is reported by the job runner, through job_finished). Their message and a reply
        say so; before, the message went on showing the request as waiting for approval."""
        for row in await self.store.fetchall(
                "SELECT * FROM requests WHERE state = 'running' AND job_id IS NULL"):
            await self.store.execute("UPDATE requests SET state = 'interrupted' WHERE id = ?", (row["id"],))
            await self._refresh_message(await self._row(row["id"]))
            await self.messenger.reply_to(row["room_id"], row["event_id"], Reply.error(
                f"Request #{row['id']} was approved by {row['decided_by']}, but I was stopped before it "
                "started; nothing ran.", "Send the command again if it is still wanted."))
            log.warning("approved_request_not_started", request=row["id"])

    async def settle_answered(self, answered: dict[str, set[str]]) -> None:
        """A state put back as it was (spbot/rolled_back.py) holds requests as waiting that were decided
        since: the bot answered their command after the request (its result, a refusal). Closed without a
        word (the room shows how they ended), so that a ✅ the older sync position brings again does not
        run the command a second time."""
        for row in await self.pending():
            shown = await self.store.fetchone("SELECT event_id FROM outbox WHERE id = ?", (row["message_id"],))
            if answered.get(row["event_id"], set()) - {shown["event_id"] if shown else None}:
                await self.store.execute("UPDATE requests SET state = 'settled', reason = ? WHERE id = ?",
                                         ("decided after the state the bot started from", row["id"]))
                log.warning("approval_settled_since", request=row["id"], command=row["command"])

    # --- opening a request ---------------------------------------------------------------------

    async def open(self, request: Request, spec: CommandSpec, args: dict[str, Any], policy: Policy) -> None:
        approvers = await self._eligible_approvers(request.sender)
        if policy.approvals > len(approvers):
            others = len([a for a in self.config.admins if a != request.sender])
            untrusted = f" ({others - len(approvers)} more whose identity is not trusted now)" \
                if others > len(approvers) else ""
            await self.messenger.reply(request, Reply.error(
                f"{self.prefix}{spec.name} needs {policy.approvals} approvals but there are only "
                f"{len(approvers)} other admins who can approve{untrusted}.",
                f"Re-trust them ({self.prefix}trust), add admins, or lower [policies.\"{spec.name}\"] "
                "approvals in the config."))
            return
        expiry = policy.expires if policy.expires is not None else self.config.approval_expiry
        now = time.time()
        secrets = spec.secrets_of(args)
        for value in secrets.values():
            register_secret(value)
        request_id = await self.store.insert(
            "INSERT INTO requests(command, text, args, requester, device_id, room_id, event_id, sent_ts_ms,"
            " needed, confirm, state, created, expires) VALUES(?,?,?,?,?,?,?,?,?,?, 'pending', ?, ?)",
            (spec.name, spec.masked_text(request.text, self.prefix, args), json.dumps(spec.masked(args)),
             request.sender, request.device_id,
             request.room_id, request.event_id, request.sent_ts_ms, policy.approvals,
             int(policy.confirm and not policy.approvals), now, now + expiry))
        if secrets:
            self._secrets[request_id] = secrets
        self._opened.set()
        row = await self._row(request_id)
        preview = await self._preview(spec, args)
        for value in secrets.values():
            preview = preview.replace(value, "***")
        message_id = await self.messenger.reply(request, self._render(row, [],
                                                                      Preview(preview, spec.masked(args))))
        await self.store.execute("UPDATE requests SET message_id = ? WHERE id = ?", (message_id, request_id))
        await self.messenger.annotate(message_id, "✅")
        await self.messenger.annotate(message_id, "❌")
        await self._audit(row, "requested", preview)
        log.info("approval_requested", request=request_id, command=spec.name, sender=request.sender)

    async def _eligible_approvers(self, requester: str) -> list[str]:
        """The other admins whose vote can count: an admin whose identity changed is never one (their
        votes are refused). Without an answer from the homeserver, every other admin is assumed."""
        try:
            return await self._eligible(requester)
        except Exception as exc:     # the check must not block the request; their votes are checked anyway
            log.warning("approvers_unchecked", error=exc.__class__.__name__)
            return [a for a in self.config.admins if a != requester]

    @property
    def prefix(self) -> str:
        return self.config.command_prefix

    async def _preview(self, spec: CommandSpec, args: dict[str, Any]) -> str:
        if spec.preview is None:
            return ""
        try:
            return await self._previewer(spec, args)
        except Exception as exc:
            log.warning("preview_failed", command=spec.name, error=exc.__class__.__name__)
            return f"(could not work out the details: {exc.__class__.__name__})"

    # --- votes ---------------------------------------------------------------------------------

    async def vote(self, request_id: int, voter: str, approve: bool, reason: str = "",
                   event_id: str | None = None, *, room_id: str) -> str:
        """Count an admin's vote cast in `room_id` (it counts only in the request's own room); returns a
        short sentence for the voter."""
        async with self._lock:
            row = await self._row(request_id)
            if row is None:
                return f"there is no request #{request_id}; see {self.prefix}requests"
            if room_id != row["room_id"]:
                log.warning("vote_from_other_room", request=request_id, voter=voter, room=room_id)
                return other_room(request_id)
            if row["state"] != "pending":
                return f"request #{request_id} is already {row['state']}"
            if row["expires"] < time.time():
                await self._expire(row)
                return f"request #{request_id} has expired"
            own = voter == row["requester"]
            if own and not row["confirm"]:
                if not approve:
                    await self._decide(row, "cancelled", voter, reason)
                    return f"request #{request_id} withdrawn"
                return "your own approval does not count: another admin has to approve"
            if not approve:
                await self._record_vote(request_id, voter, False, event_id)
                await self._decide(row, "denied", voter, reason)
                return f"request #{request_id} denied"
            await self._record_vote(request_id, voter, True, event_id)
            approvers = await self._approvers(row)
            if len(approvers) >= max(row["needed"], 1):
                await self._approved(row, approvers)
                return f"request #{request_id} approved"
            await self._refresh_message(row)
            return f"approval counted ({len(approvers)}/{row['needed']})"

    async def withdraw(self, reaction_event_id: str, by: str) -> None:
        """A redacted ✅ takes the approval back while the request is still pending."""
        async with self._lock:
            vote = await self.store.fetchone(
                "SELECT v.request_id FROM votes v JOIN requests r ON r.id = v.request_id "
                "WHERE v.event_id = ? AND v.voter = ? AND r.state = 'pending'", (reaction_event_id, by))
            if vote is None:
                return
            await self.store.execute("DELETE FROM votes WHERE request_id = ? AND voter = ?",
                                     (vote["request_id"], by))
            log.info("approval_withdrawn", request=vote["request_id"], voter=by)
            await self._refresh_message(await self._row(vote["request_id"]))

    async def _record_vote(self, request_id: int, voter: str, approve: bool, event_id: str | None) -> None:
        await self.store.execute(
            "INSERT INTO votes(request_id, voter, approve, event_id, ts) VALUES(?, ?, ?, ?, ?) "
            "ON CONFLICT(request_id, voter) DO UPDATE SET approve = excluded.approve, "
            "event_id = excluded.event_id, ts = excluded.ts",
            (request_id, voter, int(approve), event_id, time.time()))

    async def _approvers(self, row) -> list[str]:
        rows = await self.store.fetchall(
            "SELECT voter FROM votes WHERE request_id = ? AND approve = 1 ORDER BY ts", (row["id"],))
        admins = set(self.config.admins)
        return [r["voter"] for r in rows if r["voter"] in admins
                and (r["voter"] != row["requester"] or row["confirm"])]

    # --- reactions -----------------------------------------------------------------------------

    async def on_reaction(self, room: MatrixRoom, event: ReactionEvent) -> None:
        if event.sender == self.messenger.user_id:
            return
        if event.key not in APPROVE_KEYS | DENY_KEYS:
            return
        row = await self.store.fetchone(
            "SELECT r.id FROM requests r JOIN outbox o ON o.id = r.message_id WHERE o.event_id = ?",
            (event.reacts_to,))
        if row is None:
            return                                   # a reaction to some other message
        if not getattr(event, "decrypted", False) or event.sender not in self.config.admins:
            log.warning("reaction_ignored", request=row["id"], sender=event.sender,
                        reason="not encrypted" if event.sender in self.config.admins else "not an admin")
            return
        if not await self.store.claim_event(event.event_id, room.room_id, time.time()):
            return
        await self._before_vote()                    # its (session, index) on disk before it counts
        result = await self.vote(row["id"], event.sender, event.key in APPROVE_KEYS,
                                 event_id=event.event_id, room_id=room.room_id)
        if result == other_room(row["id"]):
            await self.messenger.send(room.room_id, Reply.text(f"{event.sender}: {result}"))
        log.info("reaction_vote", request=row["id"], sender=event.sender, result=result)

    async def on_redaction(self, room: MatrixRoom, event: RedactionEvent) -> None:
        await self.withdraw(event.redacts, event.sender)

    # --- outcomes ------------------------------------------------------------------------------

    async def _approved(self, row, approvers: list[str]) -> None:
        changed = await self.store.execute(
            "UPDATE requests SET state = 'running', decided_by = ? WHERE id = ? AND state = 'pending'",
            (", ".join(approvers), row["id"]))
        if not changed:
            return
        request = Request(row["requester"], row["device_id"], row["room_id"], row["event_id"],
                          row["text"], row["sent_ts_ms"])
        spec, rest = self.registry.find(split_words(row["text"][len(self.prefix):]))
        args = spec.with_secrets(spec.parse(rest), self._secrets.pop(row["id"], {}))
        if args is None:                 # its secret was in memory only, and the bot restarted since
            reason = "Its secret argument is not kept across a restart of the bot: send the command again."
            await self.store.execute("UPDATE requests SET state = 'failed', reason = ? WHERE id = ?",
                                     (reason, row["id"]))
            await self._refresh_message(await self._row(row["id"]))
            await self._audit(row, "failed", reason)
            return
        job = await self._start(request, spec, args, approvers, row["id"])
        if job is None:
            await self.store.execute("UPDATE requests SET state = 'failed', reason = ? WHERE id = ?",
                                     ("refused: the same work was already running", row["id"]))
        else:
            await self.store.execute("UPDATE requests SET job_id = ? WHERE id = ?", (job.id, row["id"]))
        await self._refresh_message(await self._row(row["id"]))
        log.info("approval_granted", request=row["id"], approvers=",".join(approvers))

    async def _decide(self, row, state: str, by: str, reason: str) -> None:
        await self.store.execute(
            "UPDATE requests SET state = ?, decided_by = ?, reason = ? WHERE id = ? AND state = 'pending'",
            (state, by, reason, row["id"]))
        row = await self._row(row["id"])
        await self._refresh_message(row)
        await self._audit(row, state, reason)
        log.info("approval_closed", request=row["id"], state=state, by=by)

    async def _expire(self, row) -> None:
        await self._decide(row, "expired", "", "nobody approved in time")

    async def _expire_loop(self) -> None:
        """Asleep until the next pending request expires (or a new one is opened), then expire it."""
        while True:
            self._opened.clear()
            now = time.time()
            row = await self.store.fetchone("SELECT MIN(expires) AS due FROM requests WHERE state = 'pending'")
            due = row["due"] if row is not None else None
            if due is None or due > now:
                try:
                    await asyncio.wait_for(self._opened.wait(), None if due is None else due - now)
                except asyncio.TimeoutError:
                    pass
                continue
            rows = await self.store.fetchall(
                "SELECT * FROM requests WHERE state = 'pending' AND expires <= ?", (now,))
            for row in rows:
                async with self._lock:
                    await self._expire(row)

    async def job_finished(self, job_id: int, request_id: int | None, state: str) -> None:
        """A job ended: the request it ran for (if any) shows how (a job `settled`: the room shows it)."""
        if request_id is None:
            return
        if state == "settled":
            await self.store.execute("UPDATE requests SET state = 'settled', reason = ? WHERE id = ? AND "
                                     "state = 'running'", ("ended after the state the bot started from", request_id))
            return
        await self.store.execute(      # its job: a stop may have come before it was noted
            "UPDATE requests SET job_id = COALESCE(job_id, ?), "
            "state = CASE WHEN state = 'running' THEN ? ELSE state END WHERE id = ?",
            (job_id, JOB_STATE_TO_REQUEST.get(state, state), request_id))
        await self._refresh_message(await self._row(request_id))

    # --- reading and rendering -----------------------------------------------------------------

    async def _row(self, request_id: int):
        return await self.store.fetchone("SELECT * FROM requests WHERE id = ?", (request_id,))

    async def pending(self, room_id: str | None = None) -> list:
        """Pending requests, all of them or those asked in `room_id`."""
        if room_id is None:
            return await self.store.fetchall("SELECT * FROM requests WHERE state = 'pending' ORDER BY id")
        return await self.store.fetchall(
            "SELECT * FROM requests WHERE state = 'pending' AND room_id = ? ORDER BY id", (room_id,))

    async def _refresh_message(self, row) -> None:
        if row is None or row["message_id"] is None:
            return
        await self.messenger.edit(row["message_id"], self._render(row, await self._approvers(row)))

    def _render(self, row, approvers: list[str], preview: Preview | None = None) -> Reply:
        rid, prefix = row["id"], self.prefix
        others = [a for a in self.config.admins if a != row["requester"]]
        when = datetime.fromtimestamp(row["expires"], ZoneInfo(self.config.timezone))
        command = quote_user_text(row["text"])
        fleet_host = self.config.host if self.config.fleet.peers else None     # a room of several bots
        if fleet_host:
            prefix = f"{prefix}on {fleet_host} "
        head = f"🔐 Request #{rid}: {row['requester']} wants to run "
        lines: list[str | Line] = list(preview.lines()) if preview else []
        state = row["state"]
        if state == "pending":
            who = "the requester's confirmation" if row["confirm"] else \
                f"{row['needed']} approval(s) from: {', '.join(others)}"
            lines += [f"Needs {who}.",
                      f"{len(approvers)}/{row['needed']} approvals" + (f": {', '.join(approvers)}" if approvers else ""),
                      f"Approve: react ✅ or send {prefix}approve {rid} · Deny: react ❌ or send "
                      f"{prefix}deny {rid} [reason]",
                      f"Expires {when:%H:%M %Z} (in {human_duration(max(0, row['expires'] - time.time()))})."]
        else:
            lines.append(self._outcome(row))
        if fleet_host:
            lines.insert(0, f"On {fleet_host} only (this server's bot counts the votes and runs it).")
        body = head + command.plain + "\n" + "\n".join(str(l) for l in lines)
        mentions = others if state == "pending" and not row["confirm"] else []
        html = f"<b>{esc(head)}</b>{command.html}<br>" + "<br>".join(
            l.html() if isinstance(l, Line) else esc(l) for l in lines)
        if mentions:                  # a pending request needs the approvers: it rings (edits never do)
            html += "<br>" + " ".join(pill(m) for m in mentions)
        return Reply(body, html, mentions, ring=bool(mentions))

    def _outcome(self, row) -> str | Line:
        state, by, reason = row["state"], row["decided_by"] or "", row["reason"] or ""
        job = f"job #{row['job_id']}" if row["job_id"] else "the job"
        if state in ("cancelled", "denied") and reason:      # a voter's own words
            lead = "🛑 cancelled" if state == "cancelled" else "❌ denied"
            return Line([f"{lead} by {by}: ", quote_user_text(reason),
                         "." if state == "cancelled" else ". Nothing ran."])
        return {
            "running": f"✅ approved by {by}: running as {job}.",
            "done": f"✅ approved by {by}: {job} finished.",
            "failed": f"✅ approved by {by}, but {job} failed." + (f" {reason}" if reason else ""),
            "cancelled": "🛑 cancelled" + (f" by {by}." if by else "."),
            "interrupted": f"⚠️ approved by {by}, but the bot stopped during {job}." if row["job_id"] else
                           f"⚠️ approved by {by}, but the bot stopped before it started. Nothing ran.",
            "denied": f"❌ denied by {by}. Nothing ran.",
            "expired": "⌛ expired: nobody approved in time. Nothing ran.",
        }.get(state, state)

    async def _audit(self, row, result: str, detail: str) -> None:
        await self.audit.record(AuditEntry(
            row["requester"], row["device_id"], row["room_id"], row["event_id"], row["command"],
            json.loads(row["args"]), result, detail or "", None,
            [v["voter"] for v in await self.store.fetchall(
                "SELECT voter FROM votes WHERE request_id = ? AND approve = 1", (row["id"],))]))


def other_room(request_id: int) -> str:
    return f"request #{request_id} was asked in another room; vote there"
