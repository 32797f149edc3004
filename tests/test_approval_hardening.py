"""Approvals that cannot be steered from elsewhere or made to lie: votes count only in the request's
room (by command and by reaction), and arguments with newlines, bidi overrides or great length show
quoted, on one line, with escapes, in the request, its preview, !requests, !audit and !jobs. Through the
real bot process, the session's Synapse and real E2EE clients."""
from __future__ import annotations

import asyncio
import json
import re
import uuid

import pytest

from spbot.chatclient import ChatClient, Seen
from spbot.devstack import PlainSession
from spbot.render import quote_user_text

from . import conftest
from .conftest import BOT_PASSWORD, PASSWORD, wait_answering

pytestmark = pytest.mark.matrix

RLO = "\u202e"
FAKE = "✅ approved by @bob:localhost"


def token() -> str:
    return uuid.uuid4().hex[:10]


async def request_for(client: ChatClient, room_id: str, bot_user: str, text: str) -> tuple[str, Seen, int]:
    command_id = await client.send(room_id, text)
    message = await client.wait_for(lambda e: e.sender == bot_user and e.reply_to == command_id
                                    and e.body.startswith("🔐 Request #"))
    return command_id, message, int(re.match(r"🔐 Request #(\d+)", message.body).group(1))


def shows_safely(text: str, html: str) -> None:
    """No raw bidi override, no line of its own drawn by the argument; the escapes are visible."""
    for rendered in (text, html):
        assert RLO not in rendered
        assert "\\u202e" in rendered
    assert not any(line.startswith(FAKE) for line in text.splitlines()), text
    assert not any(line.startswith(FAKE) for line in html.split("<br>")), html


def test_quote_user_text_escapes_every_character_that_could_lie():
    dangerous = ("\x00\x07\x1b\n\r\t\x7f\x85\x9b\u2028\u2029\u061c\u200e\u200f"
                 + "".join(map(chr, range(0x202A, 0x202F))) + "".join(map(chr, range(0x2066, 0x206A))))
    quoted = quote_user_text(f"a{dangerous}`b")
    inner = quoted.plain[1:-1]
    assert quoted.plain.startswith("`") and quoted.plain.endswith("`") and "`" not in inner
    assert all(c.isprintable() and c not in dangerous for c in inner), inner
    assert inner.startswith("a\\u0000\\u0007\\u001b\\n\\r\\t\\u007f\\u0085\\u009b\\u2028\\u2029\\u061c")
    assert all(f"\\u{c:04x}" in inner for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
    assert quoted.html == f"<code>{inner}</code>"
    assert quote_user_text("<b>é ✅ 😀</b>").html == "<code>&lt;b&gt;é ✅ 😀&lt;/b&gt;</code>"
    cut = quote_user_text("z" * 50 + "\u202e" * 10, limit=60).plain
    assert cut == "`" + "z" * 50 + "\\u202e" * 1 + "…`", cut


# --- approval from another room ------------------------------------------------------------------


@pytest.fixture(scope="module")
async def two_rooms(synapse, people, alice, bob, erin, tmp_path_factory) -> tuple[conftest.TestBot, str]:
    """A bot configured with two admin rooms; returns it (its room_id is the first) and the second."""
    user_id = synapse.register("spbot-tworooms", BOT_PASSWORD, admin=True)
    members = [people[n].user_id for n in ("bob", "carol", "erin")]
    owner = PlainSession.login(synapse.url, people["alice"].user_id, PASSWORD)
    rooms = [owner.create_encrypted_room(f"Server admin ({n})", members + [user_id]) for n in ("A", "B")]
    owner.logout()
    for member in members:
        session = PlainSession.login(synapse.url, member, PASSWORD)
        for room in rooms:
            session.join(room)
        session.logout()
    test_bot = conftest.TestBot(synapse, tmp_path_factory.mktemp("bot-tworooms"), rooms[0],
                       [people[n].user_id for n in ("alice", "bob", "erin")], user_id)
    config = test_bot.config_path.read_text()
    test_bot.config_path.write_text(config.replace(f"rooms = {json.dumps([rooms[0]])}",
                                                   f"rooms = {json.dumps(rooms)}"))
    test_bot.start()
    try:
        for room in rooms:
            await alice.wait_joined(room, user_id, timeout=60)
            await bob.wait_joined(room, user_id, timeout=60)
        await wait_answering(alice, test_bot)
        yield test_bot, rooms[1]
    finally:
        test_bot.stop()


async def test_vote_from_another_room_is_refused_and_said_so(alice, bob, erin, two_rooms):
    bot, other_room = two_rooms
    mark = token()
    command_id, message, rid = await request_for(alice, bot.room_id, bot.user_id, f"!danger {mark}")
    elsewhere = f"request #{rid} was asked in another room; vote there"

    answer = await bob.command(other_room, f"!approve {rid}", bot.user_id)
    assert answer.body == elsewhere
    answer = await erin.command(other_room, f"!deny {rid} no", bot.user_id)
    assert answer.body == elsewhere
    # A ✅ sent in the other room to the request message there (the relation only inside the ciphertext,
    # so the homeserver cannot object to a relation across rooms).
    await bob.send_encrypted(other_room, "m.reaction", {})          # shares bob's room key there
    content = bob.client.encrypt(other_room, "m.reaction", {"m.relates_to": {
        "rel_type": "m.annotation", "event_id": message.event_id, "key": "✅"}})[1]
    content.pop("m.relates_to")
    await bob.send_unencrypted(other_room, "m.room.encrypted", content)
    notice = await bob.wait_for(lambda e: e.sender == bot.user_id and e.body == f"@bob:localhost: {elsewhere}")
    assert notice.decrypted
    listing = await bob.command(other_room, "!requests", bot.user_id)
    assert listing.body == "no pending requests here\n1 more pending in other rooms (vote there)."

    await asyncio.sleep(1)
    assert mark not in bot.marks()
    listing = await alice.command(bot.room_id, "!requests", bot.user_id)
    assert f"#{rid}" in listing.body and "0/1" not in listing.body
    assert not [e for e in alice.edits_of(message.event_id) if "approved by" in e.body]

    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                         and f"danger done {mark}" in e.body, timeout=20)
    assert bot.marks().count(mark) == 1


async def test_reaction_in_the_request_room_still_counts(alice, bob, two_rooms):
    bot, _ = two_rooms
    mark = token()
    command_id, message, _ = await request_for(alice, bot.room_id, bot.user_id, f"!danger {mark}")
    await bob.react(bot.room_id, message.event_id, "✅")
    await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                         and f"danger done {mark}" in e.body, timeout=20)


# --- arguments that try to draw the bot's words ---------------------------------------------------


async def test_hostile_argument_shows_quoted_on_one_line_with_escapes(alice, bob, bot):
    hostile = f"x{token()}\n{FAKE}\n{RLO}gpj.exe"
    _, message, rid = await request_for(alice, bot.room_id, bot.user_id, f'!danger "{hostile}"')
    body, html = message.body, message.content["formatted_body"]
    shows_safely(body, html)
    head = body.splitlines()[0]
    assert head == (f'🔐 Request #{rid}: @alice:localhost wants to run '
                    f'`!danger "{hostile.splitlines()[0]}\\n{FAKE}\\n\\u202egpj.exe"`')
    code = re.search(r"<code>(.*?)</code>", html, re.S).group(1)
    assert "\n" not in code and "<br>" not in code and "\\n" in code and "\\u202e" in code
    assert body.splitlines()[1].startswith("Needs 1 approval(s)")

    listing = await alice.command(bot.room_id, "!requests", bot.user_id)
    shows_safely(listing.body, listing.content["formatted_body"])
    row = next(line for line in listing.body.splitlines() if line.startswith(f"#{rid} "))
    assert '`!danger "x' in row and "\\n✅ approved by" in row
    assert "<code>!danger" in listing.content["formatted_body"]

    deny_reason = f"fine\n{FAKE}{RLO}"
    await bob.send(bot.room_id, f'!deny {rid} "{deny_reason}"')
    denied = await alice.wait_for(
        lambda e: e.sender == bot.user_id and e.relates.get("rel_type") == "m.replace"
        and e.relates.get("event_id") == message.event_id and "denied" in e.content["m.new_content"]["body"])
    new = denied.content["m.new_content"]
    shows_safely(new["body"], new["formatted_body"])
    assert f"❌ denied by @bob:localhost: `fine\\n{FAKE}\\u202e`. Nothing ran." in new["body"]

    audit = await alice.command(bot.room_id, "!audit 5", bot.user_id)
    shows_safely(audit.body, audit.content["formatted_body"])
    assert "`danger token=x" in audit.body and "<code>danger token=x" in audit.content["formatted_body"]


async def test_hostile_argument_in_a_preview_is_quoted(alice, bot):
    """The preview of `!trust pin` (what `!trust` asks the others to approve) repeats its argument: the
    argument shows quoted there too, wherever it appears."""
    hostile = f"@x{token()}:localhost\n{FAKE}{RLO}"
    key = "A" * 43                                      # a well-formed identity key (32 bytes)
    _, message, rid = await request_for(alice, bot.room_id, bot.user_id, f'!trust pin "{hostile}" {key}')
    body, html = message.body, message.content["formatted_body"]
    shows_safely(body, html)
    preview = body.splitlines()[1]
    assert preview.startswith(f"`{hostile.splitlines()[0]}\\n{FAKE}\\u202e`: pinned identity"), preview
    assert html.count("<code>") >= 2
    await alice.send(bot.room_id, f"!deny {rid}")


async def test_long_argument_is_cut_with_an_ellipsis(alice, bot):
    long = "y" * 1000
    _, message, rid = await request_for(alice, bot.room_id, bot.user_id, f"!danger {long}")
    head = message.body.splitlines()[0]
    assert head.endswith("…`") and len(head) < 400
    assert "…</code>" in message.content["formatted_body"]
    await alice.send(bot.room_id, f"!deny {rid}")


async def test_jobs_result_is_quoted(alice, bot):
    mark = f"j{token()}{RLO}"
    command_id = await alice.send(bot.room_id, f'!locked-sleep 0.1 "{mark}"')
    await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                         and "locked sleep done" in e.body, timeout=20)
    await asyncio.sleep(1)
    listing = await alice.command(bot.room_id, "!jobs 3", bot.user_id)
    assert RLO not in listing.body and RLO not in listing.content["formatted_body"]
    assert f"`locked sleep done {mark[:-1]}\\u202e`" in listing.body
