"""The job runner (spbot/jobs.py) and the execute step (spbot/execute.py) on a real store and outbox: jobs
holding the same lock run one after the other, a second copy of locked work is refused, a cancelled job
says so, scheduled work reports to the admin rooms, and every command ends in a reply and an audit row."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiohttp import ClientConnectionError

from spbot.execute import Executor
from spbot.jobs import JobRefused, JobRunner
from spbot.outbox import speaking_for
from spbot.render import Reply
from spbot.system import children

from .pipeline_kit import ALICE, BOB, ROOM, Parts, request, sample_registry, until_sent


@pytest.fixture
async def setup(tmp_path):
    parts = await Parts(tmp_path, progress_interval=0).start()
    jobs = JobRunner(parts.store, parts.messenger, parts.config, parts.spawn)
    finished: list[tuple] = []

    async def on_finish(job_id, request_id, state):
        finished.append((job_id, request_id, state))
    jobs.on_finish.append(on_finish)
    await jobs.start()
    executor = Executor(parts.messenger, parts.audit, jobs, "!", host=SimpleNamespace())
    yield SimpleNamespace(parts=parts, jobs=jobs, executor=executor, finished=finished,
                          registry=sample_registry())
    children.stop_recording()
    await parts.stop()


async def ended(jobs: JobRunner) -> None:
    for _ in range(500):
        if not jobs.tasks:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("jobs still running")


async def test_jobs_sharing_a_lock_run_one_after_the_other(setup):
    spec, order = setup.registry.commands["backup now"], []
    gate = asyncio.Event()

    def work(name: str, wait_for: asyncio.Event | None):
        async def run(job):
            order.append(f"{name} starts")
            if wait_for is not None:
                await wait_for.wait()
            order.append(f"{name} ends")
            return "ok", Reply.text(f"{name} done")
        return run

    first = await setup.jobs.run_command(request("!backup now a"), spec, {"service": "a"}, work("first", gate))
    await asyncio.sleep(0.05)
    other = spec.__class__(**{**spec.__dict__, "name": "backup again"})    # another command, same lock
    second = await setup.jobs.run_command(request("!backup again", event_id="$cmd2"), other, {},
                                          work("second", None))
    await asyncio.sleep(0.05)
    assert order == ["first starts"]
    assert second.step == f"waiting for job #{first.id} (!backup now) to finish"
    gate.set()
    await ended(setup.jobs)
    assert order == ["first starts", "first ends", "second starts", "second ends"]
    assert setup.jobs.held == {}
    assert [f[2] for f in setup.finished] == ["done", "done"]


async def test_a_second_copy_of_locked_work_is_refused(setup):
    spec, gate = setup.registry.commands["backup now"], asyncio.Event()

    async def work(job):
        await gate.wait()
        return "ok", None
    first = await setup.jobs.run_command(request("!backup now"), spec, {}, work)
    with pytest.raises(JobRefused, match=rf"^backup now is already under way as job #{first.id} \(asked by "
                                         rf"{ALICE} "):
        await setup.jobs.run_command(request("!backup now", event_id="$cmd2"), spec, {}, work)
    refused = await setup.executor.start_job(request("!backup now", event_id="$cmd3"), spec, {"service": "x"})
    assert refused is None
    sent = await until_sent(setup.parts.connection.client, 1)
    assert sent[0][2]["body"].startswith(f"⚠️ backup now is already under way as job #{first.id}")
    assert sent[0][2]["m.relates_to"] == {"m.in_reply_to": {"event_id": "$cmd3"}}
    assert [(a["command"], a["result"]) for a in await setup.parts.audit_rows()] == [("backup now", "refused")]
    gate.set()
    await ended(setup.jobs)


async def test_a_command_job_replies_edits_its_progress_and_is_audited(setup):
    spec = setup.registry.commands["backup now"]
    job = await setup.executor.start_job(request("!backup now web"), spec, {"service": "web"})
    await job.progress("copying", fraction=0.5)
    await ended(setup.jobs)
    sent = await until_sent(setup.parts.connection.client, 3)
    progress, reply = sent[0][2], sent[1][2]
    assert progress["body"].startswith(f"⏳ !backup now — job #{job.id}\n")
    assert progress["m.relates_to"] == {"m.in_reply_to": {"event_id": "$cmd"}}
    assert (reply["body"], reply["m.relates_to"]) == ("backed up web", {"m.in_reply_to": {"event_id": "$cmd"}})
    for _ in range(100):
        final = [c for _, _, c in setup.parts.sent if "m.new_content" in c]
        if final and final[-1]["m.new_content"]["body"].startswith("✅"):
            break
        await asyncio.sleep(0.01)
    assert final[-1]["m.new_content"]["body"].startswith(f"✅ !backup now — job #{job.id}\ndone after ")
    assert [(a["command"], a["result"]) for a in await setup.parts.audit_rows()] == [("backup now", "ok")]
    assert setup.finished == [(job.id, None, "done")]


async def test_a_cancelled_job_says_who_cancelled_it(setup):
    spec, running = setup.registry.commands["backup now"], asyncio.Event()

    async def slow(job):
        running.set()
        await asyncio.sleep(30)
        return "ok", None
    job = await setup.jobs.run_command(request("!backup now"), spec, {}, slow)
    await running.wait()
    assert await setup.jobs.cancel(job.id, ALICE) == f"cancelling job #{job.id} (!backup now)"
    await ended(setup.jobs)
    with pytest.raises(LookupError, match=f"job #{job.id} is not running"):
        await setup.jobs.cancel(job.id, ALICE)
    assert setup.jobs.held == {}                      # its lock is free again


async def test_a_cancelled_command_replies_and_is_audited_as_cancelled(setup):
    spec = setup.registry.commands["backup now"]
    started = asyncio.Event()

    async def hang(ctx, service: str = "all"):
        started.set()
        await asyncio.sleep(30)
    spec = spec.__class__(**{**spec.__dict__, "func": hang})
    job = await setup.executor.start_job(request("!backup now"), spec, {"service": "all"})
    await started.wait()
    await setup.jobs.cancel(job.id, ALICE)
    await ended(setup.jobs)
    _, _, reply = (await until_sent(setup.parts.connection.client, 1))[0]
    assert reply["body"].startswith(f"🛑 !backup now (job #{job.id}) was cancelled by {ALICE} after ")
    assert reply["m.relates_to"] == {"m.in_reply_to": {"event_id": "$cmd"}}
    audit = await setup.parts.audit_rows()
    assert (audit[-1]["result"], audit[-1]["detail"]) == ("cancelled", f"cancelled by {ALICE}")
    assert setup.finished == [(job.id, None, "cancelled")]


async def test_an_inline_command_replies_even_when_it_crashes(setup):
    registry = setup.registry
    result, reply = await setup.executor.run(request("!hello you"), registry.commands["hello"], {"name": "you"})
    assert (result, reply.body) == ("ok", "hello you")
    result, reply = await setup.executor.run(request("!boom", event_id="$b"), registry.commands["boom"], {})
    assert result == "failed"
    assert reply.body == ("⚠️ !boom failed: an internal error (RuntimeError).\nNothing more was done. The "
                          "details are in the bot's log; try again, and tell the other admins if it keeps "
                          "failing.")
    audit = await setup.parts.audit_rows()
    assert [(a["command"], a["result"], a["detail"]) for a in audit] == [
        ("hello", "ok", ""), ("boom", "failed", "RuntimeError: kaboom")]


async def test_scheduled_work_reports_to_the_admin_rooms_only_when_it_has_something_to_say(setup):
    async def quiet(job):
        return None

    async def loud(job):
        return Reply.text("nightly check: 2 problems")
    await setup.jobs.run_scheduled("quiet check", quiet)
    await setup.jobs.run_scheduled("loud check", loud)
    await ended(setup.jobs)
    sent = await until_sent(setup.parts.connection.client, 2)
    assert [(room, c["body"]) for room, _, c in sent] == [
        (ROOM, "nightly check: 2 problems"), ("!other:localhost", "nightly check: 2 problems")]
    assert all("m.relates_to" not in c for _, _, c in sent)


async def cut_short_then_started_again(setup) -> tuple[int, JobRunner, list[tuple]]:
    """A job running when the bot stopped, and the job runner of the next start (started): the job's
    number, that runner, and how it tells each job's end (on_finish)."""
    spec, gate = setup.registry.commands["backup now"], asyncio.Event()

    async def never(job):
        await gate.wait()
        return "ok", None
    job = await setup.jobs.run_command(request("!backup now", event_id="$long"), spec, {}, never)
    await asyncio.sleep(0.05)
    setup.jobs.tasks[job.id].cancel()                 # the bot stopped
    await ended(setup.jobs)
    again = JobRunner(setup.parts.store, setup.parts.messenger, setup.parts.config, setup.parts.spawn)
    seen: list[tuple] = []

    async def on_finish(job_id, request_id, state):
        seen.append((job_id, state))
    again.on_finish.append(on_finish)
    await again.start()
    row = await setup.parts.store.fetchone("SELECT state FROM jobs WHERE id = ?", (job.id,))
    assert row["state"] == "interrupted"          # at once: no new work takes it for running
    return job.id, again, seen


async def test_a_job_that_went_on_in_a_state_put_back_since_is_not_told_as_cut_short(setup):
    """Its command answered after the state the bot started from was saved (spbot/rolled_back.py): the
    room shows how it ended, and neither a report nor an edit of its message says it was cut short."""
    job_id, again, seen = await cut_short_then_started_again(setup)
    await again.report_interrupted(went_on={"$long"})
    await again.report_interrupted()
    assert seen == [(job_id, "settled")]
    row = await setup.parts.store.fetchone("SELECT summary FROM jobs WHERE id = ?", (job_id,))
    assert "the room shows how it ended" in row["summary"]
    await asyncio.sleep(0.2)
    assert not [c for _, _, c in setup.parts.sent if "interrupted" in c.get("body", "")]


async def test_jobs_cut_short_by_a_stop_are_reported_interrupted_at_the_next_start(setup):
    job, again, seen = await cut_short_then_started_again(setup)
    assert seen == []
    await again.report_interrupted()
    await again.report_interrupted()                  # told once
    assert seen == [(job, "interrupted")]
    for _ in range(200):
        told = [c for _, _, c in setup.parts.sent if "was interrupted" in c.get("body", "")]
        if told:
            break
        await asyncio.sleep(0.01)
    # it needs the person who asked: it mentions them and rings (m.text), see spbot/render.py Reply.ring
    assert told[0]["body"].startswith(f"{ALICE}: ⚠️ job #{job} (!backup now, asked by {ALICE}) was interrupted: ")
    assert told[0]["msgtype"] == "m.text" and told[0]["m.mentions"] == {"user_ids": [ALICE]}
    assert told[0]["m.relates_to"] == {"m.in_reply_to": {"event_id": "$long"}}


async def test_an_approved_job_speaks_in_its_requesters_lane_so_its_result_leaves_before_the_requests_end(setup):
    """Bob approves Alice's request: the job starts in Bob's handling, but its result and the request's
    final edit (in Alice's lane, with the request) leave in the order they were said (CI once saw the
    edit first, and the console stopped reading before the result)."""
    parts, spec = setup.parts, setup.registry.commands["backup now"]
    speaking_for.set(ALICE)
    request_message = await parts.messenger.send(ROOM, Reply.text("request: awaiting approval"))
    await until_sent(parts.connection.client, 1)
    parts.connection.client.failures = [ClientConnectionError("down")]      # holds the queue meanwhile

    async def work(job):              # as the execute step's work: it replies, then the job ends
        result = Reply.text("the result")
        await parts.messenger.send(ROOM, result)
        return "ok", result

    async def end_request(job_id, request_id, state):
        await parts.messenger.edit(request_message, Reply.text(f"request: job #{job_id} finished"))
    setup.jobs.on_finish.append(end_request)

    async def bobs_approval():
        speaking_for.set(BOB)
        await parts.messenger.send(ROOM, Reply.text("approved"))
        await setup.jobs.run_command(request("!backup now"), spec, {"service": "all"}, work)
    await asyncio.create_task(bobs_approval())
    await ended(setup.jobs)
    sent = await until_sent(parts.connection.client, 4, timeout=10)
    bodies = [c.get("m.new_content", c)["body"] for _, _, c in sent]
    assert bodies.index("the result") < bodies.index("request: job #1 finished"), bodies
