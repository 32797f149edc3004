"""!user through the real path: admins' E2EE clients talk to a real bot process that manages the
session's real Synapse with its own (homeserver admin) access token. Passwords arrive only in an
encrypted direct room with the requesting admin and are checked with real logins; invites with
real registrations.

Accounts made here carry a random suffix so they never collide with other modules' accounts."""
from __future__ import annotations

import asyncio
import json
import re
import secrets
import sqlite3
import time
from typing import TYPE_CHECKING

import httpx
import pytest
from nio.events.room_events import Event

from spbot.providers.synapse_admin import SynapseAdmin
from spbot.chatclient import ChatClient, Seen

from .conftest import PASSWORD
from .test_approvals import request_for, result_reply
from .test_synapse_admin import login, register_with_token, token_for, whoami_status

if TYPE_CHECKING:
    from .conftest import TestBot

pytestmark = pytest.mark.matrix

SUFFIX = secrets.token_hex(3)
CHECKER_PASSWORD = "users chat checker password 9"
PASSWORD_RE = re.compile(r"Password: ((?:[a-z2-9]{4}-){4}[a-z2-9]{4})")
TIMEOUT = 30
DELIVERED: dict[str, str] = {}   # user id -> the password the first test received


def name(base: str) -> str:
    return f"{base}_{SUFFIX}"


class RoomsSeen:
    """Which room each event a client sees arrives in (Seen does not say)."""

    def __init__(self, chat: ChatClient):
        self.chat = chat
        self.rooms: dict[str, str] = {}
        chat.client.add_event_callback(self._record, Event)

    async def _record(self, room, event) -> None:
        self.rooms[event.event_id] = room.room_id

    async def room_of(self, seen: Seen) -> str:
        await until(lambda: seen.event_id in self.rooms, 5)
        return self.rooms[seen.event_id]

    def close(self) -> None:
        self.chat.client.event_callbacks = [c for c in self.chat.client.event_callbacks
                                            if c.func != self._record]


async def until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def users_bot(make_bot) -> TestBot:
    return await make_bot("users", extra='[users]\nreserved = ["grandpa"]\ninvite_expires = "3d"\n')


@pytest.fixture(scope="module")
async def checker(synapse) -> SynapseAdmin:
    """A homeserver admin of this module's own, to look at accounts from outside the bot."""
    user_id = synapse.register(name("users_checker"), CHECKER_PASSWORD, admin=True)
    client = SynapseAdmin(synapse.url, await token_for(synapse.url, user_id, CHECKER_PASSWORD),
                          synapse.server_name)
    yield client
    await client.aclose()


@pytest.fixture(scope="module")
async def alice_rooms(alice) -> RoomsSeen:
    rooms = RoomsSeen(alice)
    yield rooms
    rooms.close()


async def private_room(alice: ChatClient, bot: TestBot, left: tuple[str, ...] = ()) -> str:
    """The bot's direct room with alice: accepts an invitation from the bot if there is one."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for room_id, room in list(alice.client.invited_rooms.items()):
            if room.inviter == bot.user_id:
                await alice.join(room_id)
                await alice.wait_joined(room_id, alice.user_id)
                return room_id
        for room_id, room in alice.client.rooms.items():
            if room.name == "spbot (private)" and bot.user_id in room.users \
                    and alice.user_id in room.users and room_id not in left:
                return room_id
        await asyncio.sleep(0.1)
    raise AssertionError("no private room from the bot")


async def password_from(alice: ChatClient, alice_rooms: RoomsSeen, bot: TestBot, headline: str,
                        others: list[ChatClient], left: tuple[str, ...] = ()) -> tuple[str, Seen, str]:
    """The DM holding a password: (password, message, room), after checking where it went."""
    room = await private_room(alice, bot, left)
    try:
        message = await alice.wait_for(lambda e: e.sender == bot.user_id and e.body.startswith(headline),
                                       TIMEOUT)
    except asyncio.TimeoutError:
        # Seen once in CI under load, not reproduced since: say what alice did receive there.
        there = [(e.type, e.decrypted, e.body[:40]) for e in alice.events
                 if e.sender == bot.user_id and alice_rooms.rooms.get(e.event_id) == room]
        lines = [line for line in bot.log().splitlines()
                 if any(w in line for w in ("direct_room", "send", "outbox", "olm", "megolm"))]
        raise AssertionError(f"no {headline!r} in {room}; from the bot there: {there}; "
                             f"bot log: {lines[-15:]}") from None
    assert message.decrypted and message.type == "m.room.message"
    assert await alice_rooms.room_of(message) == room
    assert set(alice.client.rooms[room].users) == {alice.user_id, bot.user_id}
    password = PASSWORD_RE.search(message.body).group(1)
    assert f"<code>{password}</code>" in message.content["formatted_body"]
    for client in [alice, *others]:
        holding = [e.event_id for e in client.events if password in json.dumps(e.content)]
        assert holding in ([message.event_id], []), f"{client.user_id} saw it elsewhere"
        if client is not alice:
            assert room not in client.client.rooms and room not in client.client.invited_rooms
    await asyncio.sleep(0.5)
    assert password not in bot.log()
    return password, message, room


def outbox_contents(bot: TestBot) -> str:
    db = sqlite3.connect(f"file:{bot.state_dir / 'spbot.db'}?mode=ro", uri=True, timeout=10)
    try:
        return "\n".join(row[0] for row in db.execute("SELECT content FROM outbox"))
    finally:
        db.close()


async def reply_starting(client: ChatClient, command_id: str, bot: TestBot, start: str) -> Seen:
    """The result of an approved command (the request message also replies to the command)."""
    return await client.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                                 and e.body.startswith(start), TIMEOUT)


async def approve(bob: ChatClient, bot: TestBot, request_id: int) -> None:
    answer = await bob.command(bot.room_id, f"!approve {request_id}", bot.user_id, timeout=TIMEOUT)
    assert answer.body == f"request #{request_id} approved"


# -- !user add -----------------------------------------------------------------------------


async def test_add_sends_the_password_only_to_the_requester(alice, bob, carol, users_bot, synapse,
                                                            checker, alice_rooms):
    bot, user_id = users_bot, f"@{name('kid')}:{synapse.server_name}"
    reply = await alice.command(bot.room_id, f'!user add {name("kid")} --display "Kid Tester"',
                                bot.user_id, timeout=TIMEOUT)
    assert reply.body.startswith(f"✅ Created {user_id} (a regular account, shown as “Kid Tester”).")
    assert f"I sent the password to {alice.user_id} in a private encrypted room" in reply.body

    password, message, _ = await password_from(alice, alice_rooms, bot, f"🔑 New account {user_id}",
                                               [bob, carol])
    assert f"Homeserver: {synapse.url}" in message.body and "Element" in message.body
    assert f"User name: {name('kid')}" in message.body
    assert password not in reply.body and password not in json.dumps(reply.content)

    response = await login(synapse.url, user_id, password)             # a real login
    assert response.status_code == 200 and response.json()["user_id"] == user_id
    user = await checker.get_user(user_id)
    assert user.displayname == "Kid Tester" and not user.admin
    DELIVERED[user_id] = password
    await until(lambda: password not in outbox_contents(bot), TIMEOUT)  # not kept at rest


async def test_add_an_admin_reuses_the_private_room_and_refuses_a_taken_name(
        alice, bob, carol, users_bot, synapse, checker, alice_rooms):
    bot, user_id = users_bot, f"@{name('parent')}:{synapse.server_name}"
    first_room = await private_room(alice, bot)
    # a homeserver admin can reset any password: granting it needs another admin's approval
    command_id, request, rid = await request_for(alice, bot, f"!user add {name('parent')} --admin")
    assert f"Creates {user_id} as a homeserver ADMIN" in request.body
    await approve(bob, bot, rid)
    reply = await result_reply(alice, command_id, bot, "✅ Created", timeout=TIMEOUT)
    assert reply.body.startswith(f"✅ Created {user_id} (a homeserver admin).")
    password, _, room = await password_from(alice, alice_rooms, bot, f"🔑 New account {user_id}",
                                            [bob, carol])
    assert room == first_room
    assert (await login(synapse.url, user_id, password)).status_code == 200
    assert (await checker.get_user(user_id)).admin is True

    again = await alice.command(bot.room_id, f"!user add {name('parent')}", bot.user_id,
                                timeout=TIMEOUT)
    assert again.body.startswith(f"⚠️ {user_id} already exists on the homeserver localhost")
    assert "nothing was changed" in again.body
    assert (await login(synapse.url, user_id, password)).status_code == 200


async def test_invalid_and_reserved_names_never_reach_the_homeserver(alice, users_bot, synapse,
                                                                     checker):
    bot = users_bot
    log_path = synapse.dir / "homeserver.log"
    start = log_path.stat().st_size
    cases = [
        ("root", "“root” is reserved for the system"),
        ("postmaster", "reserved"),
        ("grandpa", "reserved"),                           # [users] reserved
        (f"Kid_{SUFFIX}", "User names are lowercase"),
        (f"1kid_{SUFFIX}", "must start with a letter"),
        (f"kid-{SUFFIX}", f"try “kid_{SUFFIX}”"),
        (f"nixbld_{SUFFIX}", "kept for system accounts"),
        (f"@kid_{SUFFIX}:{synapse.server_name}", "without @ or the server"),
        (bot.user_id[1:].split(":")[0], "only a–z, 0–9 and _"),
        ("x", "too short"),
    ]
    for raw, says in cases:
        reply = await alice.command(bot.room_id, f"!user add {raw}", bot.user_id, timeout=TIMEOUT)
        assert reply.body.startswith("⚠️") and says in reply.body, (raw, reply.body)
        assert "internal error" not in reply.body

    # Synapse's access log is flushed in order: once the bot's later request shows, any request
    # for those names would show too.
    await alice.command(bot.room_id, "!user list", bot.user_id, timeout=TIMEOUT)
    marker = f"{{{bot.user_id}}} Processed request"

    def logged() -> str:
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            fh.seek(start)
            return fh.read()
    await until(lambda: marker in logged() and "GET /_synapse/admin/v2/users?" in logged(), 20)
    admin_calls = [line for line in logged().splitlines() if marker in line]
    for raw, _ in cases:
        for candidate in (raw, raw.lower()):
            assert not any(f"%40{candidate}%3A" in line for line in admin_calls), raw
    for raw in ("root", "postmaster", "grandpa", f"kid-{SUFFIX}", f"nixbld_{SUFFIX}"):
        assert not await checker.user_exists(raw)
    assert "command_crashed" not in bot.log()


# -- !user list ----------------------------------------------------------------------------


async def test_list_shows_admin_deactivated_and_last_seen(alice, users_bot, synapse, checker):
    bot = users_bot
    gone = await checker.create_user(name("gone"), "gone password 123")
    await checker.deactivate(gone.user_id)
    reply = await alice.command(bot.room_id, "!user list", bot.user_id, timeout=TIMEOUT)
    lines = reply.body.splitlines()
    assert re.match(rf"👥 \d+ accounts on {synapse.server_name}: \d+ admins, \d+ deactivated",
                    lines[0])
    rows = {line.split(" — ")[0]: line for line in lines[1:]}     # one line per account
    kid = rows[f"@{name('kid')}:{synapse.server_name}"]
    assert "Kid Tester" in kid and "admin" not in kid and "active" in kid
    assert re.search(r" · last seen ((\d+s|\d+m\d+s) ago|never)$", kid)
    parent = rows[f"@{name('parent')}:{synapse.server_name}"]
    assert re.search(r"\badmin\b", parent) and "active" in parent
    assert "deactivated" in rows[gone.user_id]
    assert "(this bot)" in rows[bot.user_id] and re.search(r"\badmin\b", rows[bot.user_id])
    assert f"<li><b>{gone.user_id}</b> — " in reply.content["formatted_body"]

    active = await alice.command(bot.room_id, "!user list --active", bot.user_id, timeout=TIMEOUT)
    assert gone.user_id not in active.body and f"@{name('kid')}:" in active.body


# -- !user reset / deactivate (dangerous) --------------------------------------------------


async def test_reset_needs_approval_and_delivers_a_new_password(alice, bob, carol, users_bot,
                                                                synapse, alice_rooms):
    bot, user_id = users_bot, f"@{name('kid')}:{synapse.server_name}"
    old_password = DELIVERED[user_id]
    old_session = await token_for(synapse.url, user_id, old_password)
    command_id, request, rid = await request_for(alice, bot, f"!user reset {name('kid')}")
    assert f"New password for {user_id} (Kid Tester, last seen" in request.body
    assert "all its sessions are signed out" in request.body
    await approve(bob, bot, rid)
    result = await result_reply(alice, command_id, bot, "has a new password", timeout=TIMEOUT)
    assert result.body.startswith(f"✅ {user_id} has a new password; all its sessions were "
                                  "signed out.")
    password, message, _ = await password_from(alice, alice_rooms, bot,
                                               f"🔑 New password for {user_id}", [bob, carol])
    assert password not in result.body and "sign in again" in message.body
    assert (await login(synapse.url, user_id, password)).status_code == 200
    assert (await login(synapse.url, user_id, old_password)).status_code == 403
    assert await whoami_status(synapse.url, old_session) == 401
    await until(lambda: password not in outbox_contents(bot), TIMEOUT)


async def test_reset_of_a_missing_account_is_a_clear_failure(alice, bob, users_bot, synapse):
    bot = users_bot
    command_id, request, rid = await request_for(alice, bot, f"!user reset {name('ghost')}")
    assert "no such account: this will fail" in request.body
    await approve(bob, bot, rid)
    result = await reply_starting(alice, command_id, bot, "⚠️ There is no account")
    assert f"There is no account @{name('ghost')}:{synapse.server_name}" in result.body
    assert "!user list" in result.body


async def test_reset_of_the_requesters_own_account_is_refused(alice, bob, users_bot, synapse):
    bot = users_bot
    command_id, _, rid = await request_for(alice, bot, f"!user reset {alice.user_id}")
    await approve(bob, bot, rid)
    result = await reply_starting(alice, command_id, bot, "⚠️ That is your own account")
    assert "Change your password in Element" in result.body
    session = await token_for(synapse.url, alice.user_id, PASSWORD)     # unchanged
    async with httpx.AsyncClient(timeout=30) as http:                  # leave no stray device
        await http.post(f"{synapse.url}/_matrix/client/v3/logout",
                        headers={"Authorization": f"Bearer {session}"})


async def test_deactivate_with_erase_after_approval(alice, bob, users_bot, synapse, checker):
    bot = users_bot
    leaver = await checker.create_user(name("leaver"), "leaver password 123", displayname="Leaver")
    command_id, request, rid = await request_for(alice, bot,
                                                 f"!user deactivate {name('leaver')} --erase")
    assert f"Deactivates {leaver.user_id} and erases its messages and profile" in request.body
    await approve(bob, bot, rid)
    result = await result_reply(alice, command_id, bot, "is deactivated", timeout=TIMEOUT)
    assert result.body == (f"✅ {leaver.user_id} is deactivated: it cannot sign in any more. "
                           "Its messages and profile are erased.")
    after = await checker.get_user(leaver.user_id)
    assert after.deactivated and after.erased
    assert (await login(synapse.url, leaver.user_id, "leaver password 123")).status_code == 403


async def test_deactivate_never_the_bot_itself(alice, bob, users_bot, checker):
    bot = users_bot
    command_id, request, rid = await request_for(alice, bot, f"!user deactivate {bot.user_id}")
    assert "⚠️ This will not work as asked" in request.body and "my own account" in request.body
    await approve(bob, bot, rid)
    result = await reply_starting(alice, command_id, bot, "⚠️ ")
    assert result.body.startswith(f"⚠️ {bot.user_id} is my own account; I will not deactivate it")
    assert not (await checker.get_user(bot.user_id)).deactivated


async def test_a_private_room_that_was_left_is_replaced(alice, bob, carol, users_bot, synapse,
                                                       alice_rooms):
    bot, user_id = users_bot, f"@{name('cousin')}:{synapse.server_name}"
    old_room = await private_room(alice, bot)
    await alice.client.room_leave(old_room)
    reply = await alice.command(bot.room_id, f"!user add {name('cousin')}", bot.user_id,
                                timeout=TIMEOUT)
    assert reply.body.startswith(f"✅ Created {user_id}") and "I sent the password" in reply.body
    password, _, room = await password_from(alice, alice_rooms, bot, f"🔑 New account {user_id}",
                                            [bob, carol], left=(old_room,))
    assert room != old_room
    assert (await login(synapse.url, user_id, password)).status_code == 200


# -- invites -------------------------------------------------------------------------------


async def test_invite_registers_once_and_is_listed(alice, users_bot, synapse):
    bot = users_bot
    reply = await alice.command(bot.room_id, "!user invite --uses 1 --expires 2d", bot.user_id,
                                timeout=TIMEOUT)
    match = re.match(r"🎟 Invite ready: (\S+) \(1 use\(s\), valid until \d{4}-\d\d-\d\d \d\d:\d\d\)",
                     reply.body)
    assert match, reply.body
    token = match.group(1)
    assert "Create account" in reply.body and f"Edit the homeserver to {synapse.url}" in reply.body
    assert f"enter {token}" in reply.body and f"!user invite revoke {token}" in reply.body

    newcomer = name("newcomer")
    response = await register_with_token(synapse.url, newcomer, "newcomer password 1", token)
    assert response.status_code == 200, response.text
    late = await register_with_token(synapse.url, name("latecomer"), "late password 1", token)
    assert late.status_code == 401

    listing = await alice.command(bot.room_id, "!user invites", bot.user_id, timeout=TIMEOUT)
    row = next(line for line in listing.body.splitlines() if line.startswith(token))
    assert row.startswith(f"{token} — used up · used 1/1 · 0 pending · expires "), row
    assert listing.body.startswith("🎟 ")


async def test_revoked_invite_no_longer_registers(alice, users_bot, synapse):
    bot = users_bot
    reply = await alice.command(bot.room_id, "!user invite", bot.user_id, timeout=TIMEOUT)
    token = re.match(r"🎟 Invite ready: (\S+) \(1 use\(s\), valid until", reply.body).group(1)
    listing = await alice.command(bot.room_id, "!user invites", bot.user_id, timeout=TIMEOUT)
    assert re.search(rf"^{re.escape(token)} — usable · used 0/1 · 0 pending · expires \S+ \S+$", listing.body, re.M)

    revoked = await alice.command(bot.room_id, f"!user invite revoke {token}", bot.user_id,
                                  timeout=TIMEOUT)
    assert revoked.body == f"✅ Invite {token} revoked: nobody can sign up with it any more."
    response = await register_with_token(synapse.url, name("too_late"), "late password 1", token)
    assert response.status_code == 401 and response.json()["errcode"] == "M_UNAUTHORIZED"

    again = await alice.command(bot.room_id, f"!user invite revoke {token}", bot.user_id,
                                timeout=TIMEOUT)
    assert again.body.startswith("⚠️ There is no such invite on the homeserver localhost")


async def test_bad_invite_values_get_clear_replies(alice, users_bot):
    bot = users_bot
    zero = await alice.command(bot.room_id, "!user invite --uses 0", bot.user_id, timeout=TIMEOUT)
    assert zero.body.startswith("⚠️ An invite needs at least one use")
    soon = await alice.command(bot.room_id, "!user invite --expires soon", bot.user_id,
                               timeout=TIMEOUT)
    assert soon.body.startswith("⚠️ --expires: expected a duration such as")
    bad = await alice.command(bot.room_id, "!user invite revoke ../users", bot.user_id,
                              timeout=TIMEOUT)
    assert bad.body.startswith("⚠️ That does not look like an invite token")


# -- a token that is not a homeserver admin's ----------------------------------------------


async def test_a_non_admin_token_gets_a_clear_reply(alice, make_bot, synapse, checker,
                                                    tmp_path_factory):
    plain = synapse.register(name("plain_admin_token"), CHECKER_PASSWORD, admin=False)
    token = await token_for(synapse.url, plain, CHECKER_PASSWORD)
    token_file = tmp_path_factory.mktemp("users-token") / "admin.token"
    token_file.write_text(token + "\n")
    bot = await make_bot("users-plain", extra=f'[users]\nadmin_api_url = "{synapse.url}"\n'
                                              f'admin_token = {{ file = "{token_file}" }}\n')
    try:
        listing = await alice.command(bot.room_id, "!user list", bot.user_id, timeout=TIMEOUT)
        assert listing.body.startswith("⚠️ The homeserver localhost")
        assert "the bot's account is not a homeserver admin" in listing.body
        add = await alice.command(bot.room_id, f"!user add {name('sneaky')}", bot.user_id,
                                  timeout=TIMEOUT)
        assert "not a homeserver admin" in add.body
        for reply in (listing, add):
            assert token not in json.dumps(reply.content)
        assert not await checker.user_exists(name("sneaky"))
        assert "command_crashed" not in bot.log() and token not in bot.log()
    finally:
        bot.stop()
