"""The E2EE command channel, end to end: a real nio admin client talks to the bot process through the
session's real Synapse."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid

import pytest

from spbot.chatclient import ChatClient
from spbot.devstack import PlainSession

from .conftest import BOT_PASSWORD, PASSWORD, ROOT, wait_answering

pytestmark = pytest.mark.matrix


async def no_reply(client: ChatClient, event_id: str, bot_user: str, wait: float = 3.0) -> None:
    await asyncio.sleep(wait)
    assert client.replies_to(event_id, bot_user) == []


def token() -> str:
    return uuid.uuid4().hex[:10]


async def test_ping_is_an_encrypted_notice_reply(alice, bot):
    reply = await alice.command(bot.room_id, "!ping", bot.user_id)
    assert reply.decrypted, "the bot's reply must be end-to-end encrypted"
    assert reply.type == "m.room.message"
    assert reply.content["msgtype"] == "m.notice"
    assert reply.body.startswith("pong (") and reply.body.endswith(" ms since you sent it)")
    assert reply.content["format"] == "org.matrix.custom.html"
    assert "pong" in reply.content["formatted_body"]


async def test_help_lists_commands_and_explains_one(alice, bot):
    overview = await alice.command(bot.room_id, "!help", bot.user_id)
    assert "core (!help core): audit, help, ping, status" in overview.body.splitlines()
    assert "<ul>" in overview.content["formatted_body"]
    assert "mark" not in overview.body, "hidden commands stay out of !help"
    core = await alice.command(bot.room_id, "!help core", bot.user_id)
    assert "!ping — check that the bot answers" in core.body and "!status — " in core.body
    assert "!mark" not in core.body
    detail = await alice.command(bot.room_id, "!help ping", bot.user_id)
    assert detail.body.startswith("usage: !ping")


async def test_unknown_command_gets_a_suggestion(alice, bot):
    reply = await alice.command(bot.room_id, "!stauts", bot.user_id)
    assert "unknown command !stauts" in reply.body
    assert "did you mean !status?" in reply.body


async def test_wrong_arguments_get_the_usage_line(alice, bot):
    reply = await alice.command(bot.room_id, "!sleep soon", bot.user_id)
    assert "<seconds> must be a number, not 'soon'" in reply.body
    assert "usage: !sleep <seconds> [token]" in reply.body


async def test_a_crashing_command_replies_without_traceback(alice, bot):
    reply = await alice.command(bot.room_id, "!boom", bot.user_id)
    assert "!boom failed: an internal error (RuntimeError)" in reply.body
    assert "Traceback" not in reply.body and "kaboom" not in reply.body
    assert "Traceback" in bot.log(), "the traceback belongs in the log"


async def test_status_reports_the_bot(alice, bot):
    reply = await alice.command(bot.room_id, "!status", bot.user_id)
    device_id = (bot.state_dir / "credentials.json").read_text()
    assert "spbot 0.1.0, up" in reply.body
    assert bot.room_id in reply.body and "@alice:localhost" in reply.body
    assert "heartbeat: next" in reply.body
    assert any(part in reply.body for part in device_id.split('"') if len(part) == 10)


async def test_family_member_is_not_obeyed(synapse, people, bot, tmp_path):
    """A fresh family member (no refusal used up by other tests) is refused once, then ignored."""
    frank = synapse.register(f"frank{token()}", PASSWORD)
    owner = PlainSession.login(synapse.url, people["alice"].user_id, PASSWORD)
    owner.invite(bot.room_id, frank)
    owner.logout()
    member = PlainSession.login(synapse.url, frank, PASSWORD)
    member.join(bot.room_id)
    member.logout()
    client = ChatClient(synapse.url, frank, PASSWORD, tmp_path / "frank")
    await client.start()
    try:
        first_token, second_token = token(), token()
        reply = await client.command(bot.room_id, f"!mark {first_token}", bot.user_id)
        assert "only take commands from this server's admins" in reply.body
        second = await client.send(bot.room_id, f"!mark {second_token}")
        await no_reply(client, second, bot.user_id)     # at most one refusal per hour
        assert first_token not in bot.marks() and second_token not in bot.marks()
        assert "command_from_non_admin" in bot.log()
    finally:
        await client.stop()


async def test_unencrypted_command_is_not_run(alice, bot):
    mark = token()
    event_id = await alice.send_unencrypted(bot.room_id, "m.room.message",
                                            {"msgtype": "m.text", "body": f"!mark {mark}"})
    reply = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == event_id)
    assert "sent unencrypted" in reply.body
    await asyncio.sleep(1)
    assert mark not in bot.marks()


async def test_edited_message_is_not_run(alice, bot):
    first = token()
    original = await alice.send(bot.room_id, "hello, no command here")
    edited = token()
    edit = await alice.send(bot.room_id, "", content={
        "msgtype": "m.text", "body": f"* !mark {edited}",
        "m.new_content": {"msgtype": "m.text", "body": f"!mark {edited}"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": original}})
    await no_reply(alice, edit, bot.user_id)
    assert edited not in bot.marks()
    del first


async def test_commands_from_a_strangers_room_are_not_run(synapse, people, bot):
    dave = PlainSession.login(synapse.url, people["dave"].user_id, PASSWORD)
    room = dave.create_encrypted_room("dave's room", [bot.user_id])
    await asyncio.sleep(3)
    bot_session = PlainSession.login(synapse.url, bot.user_id, BOT_PASSWORD)
    joined = bot_session.http.get("/_matrix/client/v3/joined_rooms").json()["joined_rooms"]
    bot_session.logout()
    assert room not in joined, "the bot must not join a room a stranger invited it to"
    assert "invite_ignored" in bot.log() and "not an admin" in bot.log()


async def test_admin_room_not_in_config_is_not_joined(synapse, people, alice, bot):
    owner = PlainSession.login(synapse.url, people["alice"].user_id, PASSWORD)
    room = owner.create_encrypted_room("another room", [bot.user_id])
    owner.logout()
    await asyncio.sleep(3)
    bot_session = PlainSession.login(synapse.url, bot.user_id, BOT_PASSWORD)
    joined = bot_session.http.get("/_matrix/client/v3/joined_rooms").json()["joined_rooms"]
    bot_session.logout()
    assert room not in joined
    assert "room not in config" in bot.log()


async def test_fresh_admin_device_is_announced_once(synapse, people, bot, tmp_path):
    fresh = ChatClient(synapse.url, people["bob"].user_id, PASSWORD, tmp_path / "bob-phone")
    await fresh.start()
    try:
        await fresh.command(bot.room_id, "!ping", bot.user_id)
        await fresh.command(bot.room_id, "!ping", bot.user_id)
        await asyncio.sleep(1)
        notices = [e for e in fresh.events if e.sender == bot.user_id
                   and f"new device {fresh.device_id} of @bob:localhost" in e.body]
        assert len(notices) == 1
        assert notices[0].content["m.mentions"] == {"user_ids": ["@bob:localhost"]}
        assert 'href="https://matrix.to/#/@bob:localhost"' in notices[0].content["formatted_body"]
    finally:
        await fresh.stop()


async def test_undecryptable_command_gets_a_key_share_request(synapse, people, bot, tmp_path):
    client = ChatClient(synapse.url, people["alice"].user_id, PASSWORD, tmp_path / "alice-broken")
    await client.start()
    try:
        await client.command(bot.room_id, "!ping", bot.user_id)   # device known, session shared
        olm = client.client.olm
        olm.create_outbound_group_session(bot.room_id)              # a session nobody else has
        olm.outbound_group_sessions[bot.room_id].shared = True
        kind, content = client.client.encrypt(bot.room_id, "m.room.message",
                                              {"msgtype": "m.text", "body": "!ping"})
        event_id = await client.send_unencrypted(bot.room_id, kind, content)
        reply = await client.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == event_id,
                                      timeout=20)
        assert "could not decrypt your message" in reply.body
        assert client.device_id in reply.body
    finally:
        await client.stop()


async def test_restart_runs_each_command_at_most_once(alice, bot):
    """Stop the process right after commands arrive, at several moments; none may run twice."""
    tokens = []
    for delay in (0.0, 0.05, 0.2, 0.5):
        mark = token()
        tokens.append(mark)
        await alice.send(bot.room_id, f"!mark {mark}")
        await asyncio.sleep(delay)
        bot.stop(signal.SIGKILL if delay < 0.1 else signal.SIGTERM)
        bot.start()
        await wait_answering(alice, bot)
    await asyncio.sleep(2)
    counts = {t: bot.marks().count(t) for t in tokens}
    assert all(n <= 1 for n in counts.values()), counts
    bot.stop()
    bot.start()
    await wait_answering(alice, bot)
    await asyncio.sleep(1)
    assert {t: bot.marks().count(t) for t in tokens} == counts, "old commands were replayed"


async def test_command_sent_while_offline_is_ignored_when_too_old(alice, bot):
    mark = token()
    bot.stop()
    event_id = await alice.send(bot.room_id, f"!mark {mark}")
    await asyncio.sleep(9)            # the test bot's max_command_age is 8 s
    bot.start()
    reply = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == event_id,
                                 timeout=60)
    assert reply.body.startswith("ignored: sent while I was offline, send it again")
    assert mark not in bot.marks()


async def test_reply_is_queued_while_the_homeserver_is_down(synapse, alice, bot):
    mark = token()
    event_id = await alice.send(bot.room_id, f"!sleep 2 {mark}")
    started = bot.state_dir / f"started-{mark}"
    for _ in range(200):
        if started.exists():
            break
        await asyncio.sleep(0.05)
    assert started.exists(), "the command did not start"
    synapse.stop()
    await asyncio.sleep(5)            # the reply is ready while the homeserver is away
    synapse.start()
    reply = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == event_id,
                                 timeout=90)
    assert reply.body == "slept 2s (exit 0)"


async def test_secrets_never_reach_the_log(alice, bot):
    await alice.command(bot.room_id, "!ping", bot.user_id)
    log = bot.log()
    token_value = (bot.state_dir / "credentials.json").read_text().split('"access_token": "')[1][:20]
    assert BOT_PASSWORD not in log
    assert token_value not in log


def test_bad_config_stops_with_one_line_per_problem(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('homeserver = "matrix.example.org"\nuser_id = "bot"\n'
                      'admins = ["@alice:example.org", "bob"]\nstate_dir = "s"\n'
                      'max_command_age = "soon"\npassword = { file = "/x" }\nrooms = ["!a:b"]\n')
    result = subprocess.run([sys.executable, "-m", "spbot", "run", "--config", str(config)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert "spbot: config error: homeserver: 'matrix.example.org' is not valid: expected the " \
           "homeserver's URL such as https://matrix.example.org" in lines
    assert any(l.startswith("spbot: config error: user_id: 'bot' is not valid") for l in lines)
    assert any(l.startswith("spbot: config error: admins.1: 'bob' is not valid") for l in lines)
    assert any(l.startswith("spbot: config error: max_command_age: 'soon'") for l in lines)
    assert "Traceback" not in result.stderr


def test_missing_config_file_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "spbot", "run", "--config", str(tmp_path / "no.toml")],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert "no such configuration file" in result.stderr


def test_doctor_checks_the_running_setup(bot):
    result = subprocess.run([sys.executable, "-m", "spbot", "doctor", "--config", str(bot.config_path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ok  ] homeserver" in result.stdout
    assert f"[ok  ] room {bot.room_id}: joined, encrypted" in result.stdout


def test_console_talks_to_the_bot(dev_json, bot):
    result = subprocess.run([sys.executable, "-m", "spbot", "console", "--dev-json", str(dev_json)],
                            input="!ping\n", capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"[{bot.user_id}] pong (" in result.stdout


async def test_a_second_bot_on_the_same_state_directory_is_refused(alice, bot):
    """Two bots on one state directory would share one E2EE device (each overwriting the other's keys)
    and one outbox (every reply sent twice): the second one stops at once and says why."""
    second = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "spbot", "run", "--config", str(bot.config_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert second.returncode == 4, second.stdout + second.stderr
    assert f"another spbot (pid {bot.process.running_pid()}) is running with the state directory" \
        in second.stderr
    assert "login" not in second.stdout + second.stderr          # it never touched the device
    reply = await alice.command(bot.room_id, "!ping", bot.user_id, timeout=30)
    assert reply.body.startswith("pong")
