"""Ciphertext that must not run: an admin's command re-posted as a new event (before and after a bot
restart, by the admin and by others), and edits disguised as new commands in either encryption layer.
All through the real bot process, the session's Synapse and real E2EE clients."""
from __future__ import annotations

import asyncio
import urllib.parse
import uuid

import httpx
import pytest

from spbot.chatclient import ChatClient

from .conftest import wait_answering

pytestmark = pytest.mark.matrix

REPLAY_REFUSAL = "it is a copy of an earlier encrypted message (a replay)"


def token() -> str:
    return uuid.uuid4().hex[:10]


async def raw_content(client: ChatClient, room_id: str, event_id: str) -> dict:
    """The event's content exactly as the homeserver holds it (the ciphertext, for an encrypted one)."""
    path = (f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id)}/event/"
            f"{urllib.parse.quote(event_id)}")
    async with httpx.AsyncClient(base_url=client.homeserver, timeout=10) as http:
        response = await http.get(path, headers={"Authorization": f"Bearer {client.client.access_token}"})
    response.raise_for_status()
    event = response.json()
    assert event["type"] == "m.room.encrypted", event
    return event["content"]


async def encrypt(client: ChatClient, room_id: str, content: dict, event_type: str = "m.room.message") -> dict:
    """Megolm-encrypt `content` as `client`'s device would, without sending it."""
    nio = client.client
    if not nio.rooms[room_id].members_synced:
        await nio.joined_members(room_id)
    if nio.should_query_keys:
        await nio.keys_query()
    if nio.olm.should_share_group_session(room_id):
        await nio.share_group_session(room_id, ignore_unverified_devices=True)
    _, encrypted = nio.encrypt(room_id, event_type, content)
    return encrypted


async def settled(client: ChatClient, bot) -> None:
    """Until the bot has read everything sent before now (it answers commands in order)."""
    await client.command(bot.room_id, "!ping", bot.user_id)
    await asyncio.sleep(1.0)


def refusal_to(client: ChatClient, bot, event_id: str):
    return client.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == event_id, timeout=15)


async def marked(client: ChatClient, bot) -> tuple[str, str, dict]:
    """A fresh `!mark` run by `client`: the mark, the command's event id and its ciphertext."""
    mark = token()
    original = await client.send(bot.room_id, f"!mark {mark}")
    await client.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == original
                          and e.body == f"marked {mark}")
    return mark, original, await raw_content(client, bot.room_id, original)


async def test_replayed_command_is_refused_before_and_after_a_restart(alice, bob, carol, erin, bot):
    mark, original, ciphertext = await marked(alice, bot)

    # The same process: a member re-posts the exact ciphertext.
    replay = await erin.send_unencrypted(bot.room_id, "m.room.encrypted", ciphertext)
    refusal = await refusal_to(alice, bot, replay)
    assert REPLAY_REFUSAL in refusal.body and refusal.decrypted

    bot.stop()
    bot.start()
    await wait_answering(alice, bot)

    # After the restart nio's own replay memory is empty: the guard on disk still knows.
    for client in (alice, bob):
        replay = await client.send_unencrypted(bot.room_id, "m.room.encrypted", ciphertext)
        refusal = await refusal_to(alice, bot, replay)
        assert REPLAY_REFUSAL in refusal.body
    await carol.send_unencrypted(bot.room_id, "m.room.encrypted", ciphertext)
    await settled(alice, bot)
    assert bot.marks().count(mark) == 1, "the ciphertext ran again"
    warned = [line for line in bot.log().splitlines() if "WARNING" in line
              and "replayed_message_refused" in line and f"first_event_id={original}" in line]
    for sender in ("@erin:localhost", "@alice:localhost", "@bob:localhost", "@carol:localhost"):
        assert any(f"sender={sender}" in line for line in warned), sender


async def test_a_fresh_command_after_the_restart_still_runs(alice, bot):
    """The guard refuses copies, not new messages of the same (or a new) Megolm session."""
    mark = token()
    reply = await alice.command(bot.room_id, f"!mark {mark}", bot.user_id)
    assert reply.body == f"marked {mark}"
    again = await alice.command(bot.room_id, f"!mark {mark}", bot.user_id)
    assert again.body == f"marked {mark}"
    assert bot.marks().count(mark) == 2


async def test_replayed_reaction_is_not_a_second_offer_or_vote(alice, bob, erin, bot):
    """A ✅ on an alert offer is a command too: its ciphertext re-posted after a restart does nothing."""
    mark = token()
    await alice.command(bot.room_id, f"!alert-offer {mark}", bot.user_id)
    alert = await alice.wait_for(lambda e: e.sender == bot.user_id and f"test condition {mark}" in e.body)
    reaction = await bob.react(bot.room_id, alert.event_id, "✅")
    request = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == alert.event_id
                                   and e.body.startswith("🔐 Request #"))
    ciphertext = await raw_content(bob, bot.room_id, reaction)
    await alice.send(bot.room_id, f"!deny {request.body.split('#')[1].split(':')[0]} not now")
    await settled(alice, bot)

    bot.stop()
    bot.start()
    await wait_answering(alice, bot)
    # Synapse refuses the same annotation twice from one sender, so bob strips the cleartext relation
    # (the encrypted payload still carries it); erin re-posts it as it was.
    stripped = {k: v for k, v in ciphertext.items() if k != "m.relates_to"}
    await bob.send_unencrypted(bot.room_id, "m.room.encrypted", stripped)
    await erin.send_unencrypted(bot.room_id, "m.room.encrypted", ciphertext)
    await settled(alice, bot)
    requests = [e for e in alice.events if e.sender == bot.user_id and e.reply_to == alert.event_id
                and e.body.startswith("🔐 Request #")]
    assert len(requests) == 1, "the replayed ✅ opened a second request"
    assert "replayed_event_refused" in bot.log()


async def test_edit_disguised_as_a_new_command_is_not_run(alice, bot):
    """The cleartext wrapper says m.replace (what Synapse and Element show: an edit); the encrypted
    payload says it is a reply. Either layer saying "edit" is enough."""
    earlier = await alice.send(bot.room_id, "hello")
    mark = token()
    content = await encrypt(alice, bot.room_id, {
        "msgtype": "m.text", "body": f"!mark {mark}",
        "m.relates_to": {"m.in_reply_to": {"event_id": earlier}}})
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": earlier}}
    content["m.relates_to"] = {"rel_type": "m.replace", "event_id": earlier}
    disguised = await alice.send_unencrypted(bot.room_id, "m.room.encrypted", content)
    await settled(alice, bot)
    assert mark not in bot.marks()
    assert alice.replies_to(disguised, bot.user_id) == []
    assert "edit of an earlier message" in bot.log()
    # The same ciphertext again, its wrapper now declaring nothing: not an edit any more, but a replay.
    content.pop("m.relates_to")
    unwrapped = await alice.send_unencrypted(bot.room_id, "m.room.encrypted", content)
    await settled(alice, bot)
    assert mark not in bot.marks()
    assert f"event_id={unwrapped} first_event_id={disguised}" in bot.log()


async def test_edit_declared_only_inside_the_ciphertext_is_not_run(alice, bot):
    earlier = await alice.send(bot.room_id, "hello again")
    mark = token()
    content = await encrypt(alice, bot.room_id, {
        "msgtype": "m.text", "body": f"!mark {mark}",
        "m.new_content": {"msgtype": "m.text", "body": f"!mark {mark}"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": earlier}})
    content.pop("m.relates_to")                     # the server sees no relation at all
    inner_only = await alice.send_unencrypted(bot.room_id, "m.room.encrypted", content)
    content = await encrypt(alice, bot.room_id, {
        "msgtype": "m.text", "body": f"!mark {mark}",
        "m.relates_to": {"rel_type": "m.replace", "event_id": earlier}})
    content["m.relates_to"] = {"m.in_reply_to": {"event_id": earlier}}   # the server sees a reply
    reply_outside = await alice.send_unencrypted(bot.room_id, "m.room.encrypted", content)
    await settled(alice, bot)
    assert mark not in bot.marks()
    assert alice.replies_to(inner_only, bot.user_id) == []
    assert alice.replies_to(reply_outside, bot.user_id) == []
