"""The dispatcher (spbot/dispatch.py) wired to real parts, as the bot wires them: each request goes to its
step (a reply saying what is wrong, an inline run, a job, an approval request whose approval starts the
job), and a sender's flood is refused with one reply while the others' commands go on."""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from spbot.approvals import Approvals
from spbot.dispatch import Dispatcher
from spbot.execute import Executor
from spbot.jobs import JobRunner
from spbot.lanes import SenderLanes
from spbot.policy import Policies
from spbot.system import children

from .pipeline_kit import ALICE, BOB, ROOM, Parts, request, sample_registry


@pytest.fixture
async def bot(tmp_path):
    parts = await Parts(tmp_path).start()
    registry = sample_registry()
    jobs = JobRunner(parts.store, parts.messenger, parts.config, parts.spawn)
    executor = Executor(parts.messenger, parts.audit, jobs, "!", host=SimpleNamespace())

    async def eligible(requester):
        return [a for a in parts.config.admins if a != requester]

    async def nothing():
        return None
    approvals = Approvals(parts.store, parts.messenger, parts.audit, parts.config, registry,
                          start=executor.start_job, eligible_approvers=eligible,
                          preview=lambda spec, args: spec.preview(None, **args), before_vote=nothing,
                          spawn=parts.spawn)
    jobs.on_finish.append(approvals.job_finished)
    await approvals.start()
    await jobs.start()
    dispatcher = Dispatcher(parts.messenger, parts.audit, registry, Policies(parts.config, registry), approvals,
                            executor, prefix="!", started=time.time() - 60,
                            lanes=SenderLanes(concurrent=1, warn_at=2, limit=3))
    yield SimpleNamespace(parts=parts, jobs=jobs, approvals=approvals, dispatcher=dispatcher)
    children.stop_recording()
    await parts.stop()


async def _value(value):
    return await value if asyncio.iscoroutine(value) else value


def replies_to(parts: Parts, event_id: str) -> list[str]:
    return [c["body"] for _, _, c in parts.sent
            if (c.get("m.relates_to") or {}).get("m.in_reply_to", {}).get("event_id") == event_id]


async def until(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not (result := await _value(check())):
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.01)
    return result


async def test_each_request_goes_to_its_step(bot):
    now_ms = int(time.time() * 1000)
    for n, text in enumerate(["!helo", "!hello there", "!backup now db", "!boom"]):
        await bot.dispatcher.handle(request(text, event_id=f"$e{n}", ts_ms=now_ms))
    assert await until(lambda: replies_to(bot.parts, "$e0")) == ["⚠️ unknown command !helo\ndid you mean !hello?"]
    assert replies_to(bot.parts, "$e1") == ["hello there"]
    assert await until(lambda: "backed up db" in replies_to(bot.parts, "$e2"))
    assert replies_to(bot.parts, "$e3")[0].startswith("⚠️ !boom failed: an internal error (RuntimeError).")
    results = [(a["command"], a["result"]) for a in await bot.parts.audit_rows()]
    assert results == [("hello", "ok"), ("backup now", "ok"), ("boom", "failed")]


async def test_a_dangerous_command_runs_once_approved(bot):
    await bot.dispatcher.handle(request("!wipe sdb", event_id="$wipe", ts_ms=int(time.time() * 1000)))
    [pending] = await bot.approvals.pending(ROOM)
    assert await bot.approvals.vote(pending["id"], BOB, True, room_id=ROOM) == f"request #{pending['id']} approved"
    assert await until(lambda: "wiped sdb" in replies_to(bot.parts, "$wipe"))
    row = await until(lambda: bot.parts.store.fetchone(
        "SELECT state FROM requests WHERE id = ? AND state = 'done'", (pending["id"],)))
    assert row["state"] == "done"
    audit = [(a["command"], a["result"], a["approvals"]) for a in await bot.parts.audit_rows()]
    assert audit[0][:2] == ("wipe", "requested") and audit[-1] == ("wipe", "ok", f'["{BOB}"]')


async def test_a_flood_is_refused_with_one_reply_and_audited(bot):
    now_ms = int(time.time() * 1000)
    handled = [asyncio.create_task(bot.dispatcher.handle(request("!hello", event_id=f"$f{n}", ts_ms=now_ms)))
               for n in range(7)]
    await asyncio.gather(*handled)
    bodies = [c["body"] for _, _, c in bot.parts.sent]
    assert sum(b.startswith("slow down: ") for b in bodies) == 1
    assert sum(b.startswith("⚠️ too many of your commands are waiting (3): I did not run !hello") for b in bodies) == 1
    results = [a["result"] for a in await bot.parts.audit_rows()]
    assert results.count("refused") == 3 and results.count("ok") == 4
    assert all(a["sender"] == ALICE for a in await bot.parts.audit_rows())
