"""Bounds and fairness: every argument is bounded with a clear error, policies that depend on the
arguments, a sender's flood queues behind itself, and hostile lines sent through the real chat (real
Synapse, the bot as a real process) each get a reply that is not an internal error."""
from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from datetime import timedelta

import pytest

from spbot import commands
from spbot.lanes import Admission, SenderLanes
from spbot.registry import REGISTRY, ArgError, Policy, parse_span, split_words

commands.load_all()


def parse(line: str) -> dict:
    spec, rest = REGISTRY.find(split_words(line))
    return spec.parse(rest)


def refusal(line: str) -> str:
    with pytest.raises(ArgError) as error:
        parse(line)
    return str(error.value)


# --------------------------------------------------------------------------- converters


def test_whole_numbers_are_bounded():
    assert refusal("approve 99999999999999999999") == \
        "<request_id> must be at most 1000000000, not '99999999999999999999'"
    assert refusal("approve " + "9" * 60).startswith("<request_id> must be a whole number, not '9999")
    assert refusal("approve 99999999999") == "<request_id> must be at most 1000000000, not '99999999999'"
    assert refusal("approve -1") == "<request_id> must be at least 0, not '-1'"
    assert refusal("approve ١٢") == "<request_id> must be a whole number, not '١٢'"
    assert parse("approve 12") == {"request_id": 12}
    assert refusal("user invite --uses 10001") == "--uses must be at most 10000, not '10001'"


def test_durations_are_bounded_and_never_overflow():
    assert refusal("user invite --expires 99999999999d") == "--expires: at most 365d, not '99999999999d'"
    assert refusal("user invite --expires 1e308d").startswith("--expires: expected a duration such as")
    assert refusal("user invite --expires " + "9" * 400 + "d").startswith("--expires: expected a duration")
    assert parse("user invite --expires 12h")["expires"] == timedelta(hours=12)
    assert parse("user invite --expires never")["expires"] == timedelta(0)
    assert parse_span("2w", 86400 * 30) == 14 * 86400
    with pytest.raises(ValueError):
        parse_span("nan", 1e9)


@pytest.mark.parametrize("word", ["nan", "inf", "-inf", "1e999", "NaN"])
def test_floats_are_finite(word):
    from tests.bot_plugins import sleep
    with pytest.raises(ArgError, match="<seconds> must be a number"):
        sleep.spec.parse([word])


def test_paths_and_words_are_bounded_and_have_no_nul():
    assert refusal("disk /srv/\x00x") == "the command contains a NUL character; nothing was run."
    with pytest.raises(ArgError, match="^<path> contains a NUL character$"):
        REGISTRY.commands["disk"].parse(["/srv/\x00x"])          # the converter refuses it as well
    assert refusal("disk /" + "a" * 2000) == "<path> is 2,001 characters long; at most 1,024 are accepted"
    assert refusal("backup list " + "s" * 3000) == \
        "<service> is 3,000 characters long; at most 2,048 are accepted"
    assert refusal("user add alice --admin=no") == "--admin takes no value: write --admin alone"


def test_errors_never_echo_a_huge_input():
    message = refusal("ping " + "y" * 3000)
    assert message.startswith("too many arguments: 'yyyy") and len(message) < 120
    message = refusal("user add alice --" + "z" * 3000)
    assert message.startswith("unknown option --zzz") and len(message) < 120


def test_a_command_line_over_the_limit_or_with_a_nul_is_refused():
    with pytest.raises(ArgError, match="the limit is 4,096. Nothing was run."):
        split_words("ping " + "x" * 5000)
    with pytest.raises(ArgError, match="NUL character"):
        split_words("ping \x00")
    assert split_words("a 'b c' \"d \\\" e\" f\\ g") == ["a", "b c", 'd " e', "f g"]


# --------------------------------------------------------------------------- policies


def test_policies_depend_on_the_arguments():
    user_add = REGISTRY.commands["user add"]
    assert not user_add.policy_for(parse("user add kid")).needs_request
    assert user_add.policy_for(parse("user add parent --admin")).approvals == 1
    setup = REGISTRY.commands["backup setup"]
    assert not setup.policy_for(parse("backup setup init")).needs_request
    assert setup.policy_for(parse("backup setup b2 family-bucket")).approvals == 1
    # a configured policy that asks for less does not lower what the arguments ask for
    assert user_add.policy_for(parse("user add parent --admin"), Policy()).approvals == 1
    assert user_add.policy_for(parse("user add kid"), Policy(approvals=2)).approvals == 2


def test_every_command_that_deletes_data_or_grants_power_needs_approval():
    needs = {name for name, spec in REGISTRY.commands.items() if spec.policy.needs_request}
    assert {"backup prune", "backup restore", "cleanup run", "user deactivate", "user reset",
            "ssh add", "ssh remove", "trust pin", "dns sync", "upgrade", "rollback", "reboot",
            "server reboot", "server resize", "service restart", "volume grow"} <= needs


# --------------------------------------------------------------------------- lanes


async def test_a_lane_runs_two_at_a_time_warns_once_and_refuses_past_its_limit():
    lanes = SenderLanes(concurrent=2, warn_at=3, limit=6)
    lane, gate, running, peak, verdicts = lanes.lane("@a:x"), asyncio.Event(), [0], [0], []

    async def command() -> None:
        verdicts.append(lane.admit())
        if verdicts[-1] in (Admission.REFUSE, Admission.REFUSE_AND_SAY):
            return
        async with lane.turn():
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            await gate.wait()
            running[0] -= 1

    tasks = []
    for _ in range(10):
        tasks.append(asyncio.create_task(command()))
        await asyncio.sleep(0)
    other = lanes.lane("@b:x")
    assert other.admit() is Admission.RUN and other is not lane, "another sender has a lane of its own"
    gate.set()
    await asyncio.gather(*tasks)
    assert peak[0] == 2
    assert verdicts.count(Admission.RUN_AND_WARN) == 1
    assert verdicts.count(Admission.REFUSE_AND_SAY) == 1 and verdicts.count(Admission.REFUSE) == 1
    assert lane.idle
    lanes.forget_if_idle("@a:x")
    assert lanes.lane("@a:x") is not lane


async def test_a_backlog_from_an_outage_queues_but_is_never_refused_or_told_to_slow_down():
    lane, gate, verdicts = SenderLanes(concurrent=2, warn_at=3, limit=6).lane("@a:x"), asyncio.Event(), []

    async def command() -> None:
        verdicts.append(lane.admit(backlog=True))
        async with lane.turn():
            await gate.wait()

    tasks = [asyncio.create_task(command()) for _ in range(20)]
    await asyncio.sleep(0.05)
    assert lane.waiting == 18 and lane.running == 2, "they still queue, two at a time"
    gate.set()
    await asyncio.gather(*tasks)
    assert verdicts == [Admission.RUN] * 20


# --------------------------------------------------------------------------- through the real chat

HOSTILE = [
    "!approve 99999999999999999999",
    "!user invite --expires 99999999999d",
    "!ping " + "x" * 20_000,
    "!disk /srv/\x00evil",
    '!user add "alice',
    "!deny 1 'unbalanced",
    "!sleep nan",
    "!sleep 1e999",
    "!audit -99999999999999999999999",
    "!" + "q" * 3000,
    "!'",
    "!user add alice --display " + "d" * 3000,
]


async def test_hostile_lines_each_get_a_clear_reply(alice, bot):
    sent = {await alice.send(bot.room_id, line): line for line in HOSTILE}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        replies = {sent[e.reply_to]: e for e in alice.events
                   if e.sender == bot.user_id and e.reply_to in sent}
        if len(replies) == len(sent):
            break
        await asyncio.sleep(0.2)
    missing = [line[:40] for line in HOSTILE if line not in replies]
    assert not missing, f"no reply to {missing}"
    for line, reply in replies.items():
        assert "internal error" not in reply.body, f"{line[:60]!r} → {reply.body}"
        assert len(reply.body) < 600, f"{line[:60]!r}: the reply echoes the input back"
    assert "must be at most 1000000000" in replies[HOSTILE[0]].body
    assert "--expires: at most 365d" in replies[HOSTILE[1]].body
    assert "the limit is 4,096" in replies[HOSTILE[2]].body
    assert "check your quotes" in replies[HOSTILE[4]].body
    assert "command_handling_crashed" not in bot.log()


def log_summary(bot) -> str:
    lines = bot.log().splitlines()
    words = [line.split()[3] for line in lines if len(line.split()) > 3]
    return str({w: words.count(w) for w in set(words)})


async def test_a_flood_from_one_admin_queues_behind_itself_not_another_admin(alice, bob, bot):
    # One after the other: a burst of more than 10 between two syncs would hit the sync gap (see report).
    flood = 12
    sent_ids = [await alice.send(bot.room_id, "!sleep 3") for _ in range(flood)]   # a backlog forms
    asked = time.monotonic()
    bob_reply = await bob.command(bot.room_id, "!ping", bot.user_id, timeout=30)
    bob_latency = time.monotonic() - asked
    last = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == sent_ids[-1]
                                and e.body.startswith("slept"), timeout=60)
    assert bob_reply.body.startswith("pong")
    assert bob_latency < 10, f"bob waited {bob_latency:.1f}s behind alice's flood"   # 2 cores, shared
    assert bob_reply.received < last.received - 1, "bob's answer waited for alice's flood"
    await asyncio.sleep(1)
    replies = [e for e in alice.events if e.sender == bot.user_id and e.reply_to in set(sent_ids)]
    assert len([e for e in replies if e.body.startswith("slept")]) == flood, log_summary(bot)
    slow_down = [e for e in replies if e.body.startswith("slow down")]
    assert len(slow_down) == 1, "told once, and every command still answered"
    assert "of your commands are waiting; I'll take the rest after them, in order" in slow_down[0].body


CRASHING_PLUGIN = '''
"""Loaded at interpreter start (sitecustomize) by this test's bot only: a command whose policy crashes."""
from spbot.registry import command


def _policy_crashes(args):
    raise RuntimeError("policy kaboom with secret-ish detail")


@command("crash-policy", help="test: its policy crashes before anything runs", hidden=True,
         policy_when=_policy_crashes)
async def crash_policy(ctx, token: str = ""):
    return "must never run"
'''


async def test_a_crash_outside_the_command_body_is_replied_and_audited(alice, make_bot, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(CRASHING_PLUGIN)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path),
                                                                    os.environ.get("PYTHONPATH")])))
    crashy = await make_bot("crashy", env=env)
    reply = await alice.command(crashy.room_id, "!crash-policy t1", crashy.user_id, timeout=30)
    assert "!crash-policy failed: an internal error (RuntimeError)" in reply.body
    assert "kaboom" not in reply.body and "Traceback" not in reply.body
    assert "Traceback" in crashy.log() and "policy kaboom" in crashy.log()
    with sqlite3.connect(crashy.state_dir / "spbot.db") as db:
        row = db.execute("SELECT command, result, detail FROM audit WHERE event_id IS NOT NULL "
                         "ORDER BY id DESC LIMIT 1").fetchone()
    assert row[0] == "crash-policy" and row[1] == "failed" and row[2].startswith("RuntimeError")
    again = await alice.command(crashy.room_id, "!ping", crashy.user_id, timeout=30)
    assert again.body.startswith("pong"), "the bot goes on answering"
