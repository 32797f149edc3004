"""Approvals and jobs through the real path: admins' E2EE clients vote by reaction or command on the
running bot's request messages; jobs report progress, take locks, can be cancelled and interrupted."""
from __future__ import annotations

import asyncio
import re
import signal
import statistics
import time
import uuid

import pytest

from spbot.chatclient import ChatClient, Seen

from .conftest import wait_answering

pytestmark = pytest.mark.matrix


def token() -> str:
    return uuid.uuid4().hex[:10]


async def request_for(client: ChatClient, bot, text: str) -> tuple[str, Seen, int]:
    """Send a command that needs approval; returns (command event, request message, request id)."""
    command_id = await client.send(bot.room_id, text)
    message = await client.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                                    and e.body.startswith("🔐 Request #"))
    return command_id, message, int(re.match(r"🔐 Request #(\d+)", message.body).group(1))


async def final_edit(client: ChatClient, message: Seen, bot, needle: str, timeout: float = 20) -> Seen:
    return await client.wait_for(lambda e: e.sender == bot.user_id
                                 and e.relates.get("rel_type") == "m.replace"
                                 and e.relates.get("event_id") == message.event_id
                                 and needle in e.content["m.new_content"]["body"], timeout)


async def started_locked_sleep(client: ChatClient, bot, seconds: float, mark: str) -> str:
    """`!locked-sleep` sent, once its job has begun (or after 10 s); the command's event id."""
    command_id = await client.send(bot.room_id, f"!locked-sleep {seconds} {mark}")
    for _ in range(200):
        if (bot.state_dir / f"started-{mark}").exists():
            break
        await asyncio.sleep(0.05)
    return command_id


async def result_reply(client: ChatClient, command_id: str, bot, needle: str, timeout: float = 20) -> Seen:
    return await client.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                                 and needle in e.body, timeout)


async def test_request_message_is_clear_and_offers_reaction_buttons(alice, bot):
    mark = token()
    _, message, rid = await request_for(alice, bot, f"!danger {mark}")
    body = message.body
    assert f"@alice:localhost wants to run `!danger {mark}`" in body
    assert "Needs 1 approval(s) from: @bob:localhost, @erin:localhost" in body
    assert f"!approve {rid}" in body and f"!deny {rid}" in body and "Expires" in body
    assert set(message.content["m.mentions"]["user_ids"]) == {"@bob:localhost", "@erin:localhost"}
    assert message.content["msgtype"] == "m.text"        # it needs the approvers: it rings (issue 15)
    buttons = await alice.wait_for(lambda e: e.sender == bot.user_id and e.type == "m.reaction"
                                   and e.relates.get("event_id") == message.event_id)
    assert buttons.relates["rel_type"] == "m.annotation" and buttons.relates["key"] in ("✅", "❌")
    await alice.send(bot.room_id, f"!deny {rid} cleaning up")


async def test_approve_by_reaction_runs_once(alice, bob, bot):
    mark = token()
    command_id, message, _ = await request_for(alice, bot, f"!danger {mark}")
    await bob.react(bot.room_id, message.event_id, "✅")
    await result_reply(alice, command_id, bot, f"danger done {mark}")
    edit = await final_edit(alice, message, bot, "approved by @bob:localhost")
    assert "m.new_content" in edit.content and edit.content["body"].startswith("* ")
    assert edit.content["m.mentions"] == {} and edit.content["m.new_content"]["msgtype"] == "m.notice"
    await bob.react(bot.room_id, message.event_id, "👍")        # a second vote changes nothing
    await asyncio.sleep(2)
    assert bot.marks().count(mark) == 1


async def test_approve_by_command(alice, bob, bot):
    mark = token()
    command_id, _, rid = await request_for(alice, bot, f"!danger {mark}")
    answer = await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    assert answer.body == f"request #{rid} approved"
    await result_reply(alice, command_id, bot, f"danger done {mark}")
    again = await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    assert "already" in again.body
    assert bot.marks().count(mark) == 1


async def test_own_approval_does_not_count(alice, bob, bot):
    mark = token()
    command_id, message, rid = await request_for(alice, bot, f"!danger {mark}")
    answer = await alice.command(bot.room_id, f"!approve {rid}", bot.user_id)
    assert answer.body == "your own approval does not count: another admin has to approve"
    await alice.react(bot.room_id, message.event_id, "✅")
    await asyncio.sleep(2)
    assert mark not in bot.marks()
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    await result_reply(alice, command_id, bot, f"danger done {mark}")


async def test_non_admin_approval_is_ignored(alice, carol, bot):
    mark = token()
    _, message, rid = await request_for(alice, bot, f"!danger {mark}")
    await carol.react(bot.room_id, message.event_id, "✅")
    await carol.send(bot.room_id, f"!approve {rid}")
    await asyncio.sleep(3)
    assert mark not in bot.marks()
    listing = await alice.command(bot.room_id, "!requests", bot.user_id)
    assert f"#{rid}" in listing.body
    await alice.send(bot.room_id, f"!deny {rid}")


async def test_unencrypted_reaction_is_ignored(alice, bob, bot):
    mark = token()
    _, message, rid = await request_for(alice, bot, f"!danger {mark}")
    await bob.react(bot.room_id, message.event_id, "✅", encrypted=False)
    await asyncio.sleep(3)
    assert mark not in bot.marks()
    await alice.send(bot.room_id, f"!deny {rid}")


async def test_deny_wins(alice, bob, erin, bot):
    mark = token()
    _, message, rid = await request_for(alice, bot, f"!danger-two {mark}")
    await erin.react(bot.room_id, message.event_id, "✅")
    await bob.command(bot.room_id, f"!deny {rid} not during dinner", bot.user_id)
    edit = await final_edit(alice, message, bot, "denied by @bob:localhost: `not during dinner`")
    assert "Nothing ran" in edit.content["m.new_content"]["body"]
    late = await erin.command(bot.room_id, f"!approve {rid}", bot.user_id)
    assert late.body == f"request #{rid} is already denied"
    assert mark not in bot.marks()


async def test_request_expires(alice, bob, bot):
    mark = token()
    _, message, rid = await request_for(alice, bot, f"!expiring {mark}")
    await final_edit(alice, message, bot, "expired", timeout=15)
    late = await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    assert late.body == f"request #{rid} is already expired"
    assert mark not in bot.marks()


async def test_redacted_reaction_withdraws_the_approval(alice, bob, erin, bot):
    mark = token()
    command_id, message, rid = await request_for(alice, bot, f"!danger-two {mark}")
    reaction = await bob.react(bot.room_id, message.event_id, "✅")
    await final_edit(alice, message, bot, "1/2 approvals: @bob:localhost")
    await bob.redact(bot.room_id, reaction)
    await final_edit(alice, message, bot, "0/2 approvals")
    await erin.react(bot.room_id, message.event_id, "✅")
    await final_edit(alice, message, bot, "1/2 approvals: @erin:localhost")
    assert mark not in bot.marks()
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    await result_reply(alice, command_id, bot, f"danger-two done {mark}")
    assert bot.marks().count(mark) == 1


async def test_restart_between_request_and_approval(alice, bob, bot):
    mark = token()
    command_id, message, rid = await request_for(alice, bot, f"!danger {mark}")
    await asyncio.sleep(1)
    bot.stop()
    bot.start()
    await wait_answering(alice, bot)
    await bob.react(bot.room_id, message.event_id, "✅")
    await result_reply(alice, command_id, bot, f"danger done {mark}", timeout=30)
    await asyncio.sleep(1)
    assert bot.marks().count(mark) == 1


async def test_progress_edits_one_message_and_jobs_lists_it(alice, bob, bot):
    mark = token()
    command_id, _, rid = await request_for(alice, bot, f"!danger-slow 3 {mark}")
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    progress = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                                    and "⏳ !danger-slow — job #" in e.body)
    job_id = int(re.search(r"job #(\d+)", progress.body).group(1))
    await result_reply(alice, command_id, bot, f"slow danger done {mark}")
    final = await final_edit(alice, progress, bot, "✅ !danger-slow")
    assert "done after" in final.content["m.new_content"]["body"]
    edits = alice.edits_of(progress.event_id)
    assert any("step 2 of 3" in e.content["m.new_content"]["body"] for e in edits)
    assert all(e.relates["rel_type"] == "m.replace" for e in edits)
    listing = await alice.command(bot.room_id, "!jobs", bot.user_id)
    assert re.search(rf"^#{job_id} !danger-slow — ✅ done · \w+ · @alice:localhost$", listing.body, re.M), listing.body
    audit = await alice.command(bot.room_id, "!audit 30", bot.user_id)
    assert re.search(r"^\d\d-\d\d \d\d:\d\d — `danger-slow seconds=3 token=\w+` · @alice:localhost \(\w+\) · "
                     r"approved by @bob:localhost · ok$", audit.body, re.M), audit.body


async def test_cancel_stops_a_long_job_and_its_process(alice, bob, bot):
    mark = token()
    command_id, _, rid = await request_for(alice, bot, f"!danger-slow 60 {mark}")
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    progress = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                                    and "job #" in e.body)
    job_id = int(re.search(r"job #(\d+)", progress.body).group(1))
    await asyncio.sleep(2)
    started = time.monotonic()
    answer = await bob.command(bot.room_id, f"!cancel {job_id}", bot.user_id)
    assert answer.body.startswith(f"cancelling job #{job_id}")
    cancelled = await result_reply(alice, command_id, bot, "was cancelled by @bob:localhost")
    assert time.monotonic() - started < 10
    assert "its last step was: step" in cancelled.body
    await final_edit(alice, progress, bot, "🛑 !danger-slow")
    assert mark not in bot.marks()
    listing = await alice.command(bot.room_id, "!jobs", bot.user_id)
    assert re.search(rf"^#{job_id} !danger-slow — ⏹ cancelled · ", listing.body, re.M), listing.body


async def test_kill_during_a_job_marks_it_interrupted_and_never_reruns(alice, bob, bot):
    mark = token()
    command_id, message, rid = await request_for(alice, bot, f"!danger-slow 20 {mark}")
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    started = bot.state_dir / f"started-{mark}"
    for _ in range(200):
        if started.exists():
            break
        await asyncio.sleep(0.05)
    started.unlink()
    bot.stop(signal.SIGKILL)
    bot.start()
    report = await result_reply(alice, command_id, bot, "was interrupted", timeout=60)
    assert "It was not started again" in report.body
    await final_edit(alice, message, bot, "the bot stopped during job")
    await asyncio.sleep(3)
    assert not started.exists(), "the interrupted job was started again"
    assert mark not in bot.marks()


async def test_locked_work_is_not_started_twice_and_other_locked_work_waits(alice, bob, bot):
    first, second = token(), token()
    first_id = await started_locked_sleep(alice, bot, 4, first)
    refused = await alice.command(bot.room_id, f"!locked-sleep 1 {second}", bot.user_id)
    assert "locked-sleep is already under way as job #" in refused.body
    command_id, _, rid = await request_for(alice, bot, f"!danger-slow 1 {second}")
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    waiting = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                                   and "waiting for job #" in e.body)
    assert "(!locked-sleep) to finish" in waiting.body
    await result_reply(alice, first_id, bot, f"locked sleep done {first}")
    await result_reply(alice, command_id, bot, f"slow danger done {second}", timeout=30)


async def _answer_times(client: ChatClient, bot, command: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.monotonic()
        await client.command(bot.room_id, command, bot.user_id)
        times.append(time.monotonic() - started)
    return times


async def test_reads_answer_quickly_while_a_long_job_runs(alice, bot):
    idle_ping = statistics.median(await _answer_times(alice, bot, "!ping", 5))
    idle_disk = statistics.median(await _answer_times(alice, bot, "!disk", 3))
    mark = token()
    await alice.send(bot.room_id, f"!locked-sleep 10 {mark}")
    for _ in range(100):
        if (bot.state_dir / f"started-{mark}").exists():
            break
        await asyncio.sleep(0.05)
    busy_ping = statistics.median(await _answer_times(alice, bot, "!ping", 5))
    busy_disk = statistics.median(await _answer_times(alice, bot, "!disk", 3))
    # A job that blocked the loop (or held a lock reads wait for) would hold them for seconds;
    # the margin only absorbs machine noise.
    assert busy_ping < idle_ping * 2 + 0.5, (idle_ping, busy_ping)
    assert busy_disk < idle_disk * 2 + 0.5, (idle_disk, busy_disk)


async def test_a_checkmark_on_an_alert_offer_starts_the_approval_flow(alice, bob, erin, bot):
    mark = token()
    await alice.command(bot.room_id, f"!alert-offer {mark}", bot.user_id)
    alert = await alice.wait_for(lambda e: e.sender == bot.user_id and f"test condition {mark}" in e.body)
    assert f"react ✅ to this message to run !danger {mark}" in alert.body
    assert "@bob:localhost" in alert.content["m.mentions"]["user_ids"]
    await bob.react(bot.room_id, alert.event_id, "✅")
    request = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == alert.event_id
                                   and e.body.startswith("🔐 Request #"))
    assert f"@bob:localhost wants to run `!danger {mark}`" in request.body
    assert mark not in bot.marks(), "the offer itself must not run anything"
    rid = int(re.match(r"🔐 Request #(\d+)", request.body).group(1))
    await erin.command(bot.room_id, f"!approve {rid}", bot.user_id)
    await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == alert.event_id
                         and f"danger done {mark}" in e.body)
    assert bot.marks().count(mark) == 1
