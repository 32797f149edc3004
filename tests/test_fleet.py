"""A fleet on one homeserver: three bots (nas, vps, box) in one encrypted room, each its own process.
Addressing, one gathered reply for `!all`, labelled replies, a dangerous command on one host only,
per-host admins, `!fleet`, and a stopped bot reported silent (and back) exactly once."""
from __future__ import annotations

import asyncio
import re
import sqlite3
import time
import uuid

import pytest

from .fleet_kit import BOT_PASSWORD, Fleet, FleetBot, create_room, join_people, start_bots, wait_answering_on

pytestmark = pytest.mark.matrix
QUIET = 2.5          # how long "nobody else answered" is watched for


@pytest.fixture(scope="module")
async def fleet(synapse, people, alice, bob, erin, tmp_path_factory) -> Fleet:
    a, b, e = people["alice"].user_id, people["bob"].user_id, people["erin"].user_id
    bots = {host: FleetBot(host, synapse, synapse.register(f"spbot-fleet-{host}", BOT_PASSWORD, admin=True),
                           admins) for host, admins in (("nas", [a, b]), ("vps", [a, b]), ("box", [a, e]))}
    room = create_room(synapse, a, [(synapse, u) for u in (b, e)] + [(synapse, fb.user_id)
                                                                     for fb in bots.values()], "Fleet (tests)")
    join_people(room, [(synapse, b), (synapse, e)])
    fleet = Fleet(room, bots)
    await start_bots(fleet, tmp_path_factory.mktemp("fleet"), alice, default="nas", heartbeat=3, silent_after=12)
    yield fleet
    for fb in bots.values():
        fb.bot.stop()


def token() -> str:
    return uuid.uuid4().hex[:8]


async def replies(client, fleet: Fleet, event_id: str, quiet: float = QUIET):
    """The bots' replies to a command: once the first came, whatever else came within `quiet` s."""
    await client.wait_for(lambda e: e.reply_to == event_id and fleet.by_user(e.sender), timeout=20)
    await asyncio.sleep(quiet)
    return [e for e in client.replies_to(event_id) if fleet.by_user(e.sender)]


async def test_addressed_to_one_host_only_that_bot_answers_labelled(fleet, alice):
    sent = await alice.send(fleet.room_id, "!on vps ping")
    got = await replies(alice, fleet, sent)
    assert [fleet.by_user(e.sender) for e in got] == ["vps"]
    assert got[0].body.startswith("[vps] pong")
    short = await alice.send(fleet.room_id, "!box ping")
    assert [fleet.by_user(e.sender) for e in await replies(alice, fleet, short)] == ["box"]


async def test_unaddressed_is_answered_by_the_default_with_a_hint(fleet, alice):
    sent = await alice.send(fleet.room_id, "!ping")
    got = await replies(alice, fleet, sent)
    assert [fleet.by_user(e.sender) for e in got] == ["nas"]
    assert "this room's default" in got[0].body and "!on " in got[0].body and "!all ping" in got[0].body


async def test_all_gives_one_reply_with_every_host_labelled(fleet, alice):
    sent = await alice.send(fleet.room_id, "!all ping")
    reply = await alice.wait_for(lambda e: e.reply_to == sent and fleet.by_user(e.sender), timeout=15)
    got = await replies(alice, fleet, sent, quiet=1.5)
    assert len(got) == 1, [e.body for e in got]
    assert "3 of 3 servers answered" in reply.body
    for host in ("nas", "vps", "box"):
        assert re.search(rf"\[{host}\] pong", reply.body), reply.body
    # Nothing of the exchange shows as a message: the bots' events are of their own type.
    assert not [e for e in alice.events if e.type == "m.room.message" and "answer" in e.content.get("kind", "")]


async def test_dangerous_must_name_one_host(fleet, alice):
    for text in (f"!all danger {token()}", f"!danger {token()}"):
        sent = await alice.send(fleet.room_id, text)
        got = await replies(alice, fleet, sent)
        assert [fleet.by_user(e.sender) for e in got] == ["nas"], [e.body for e in got]
        assert "name exactly one host" in got[0].body
    for fb in fleet.bots.values():
        assert not fb.bot.marks()


async def test_dangerous_approved_on_one_host_runs_there_once(fleet, alice, bob):
    mark = token()
    sent = await alice.send(fleet.room_id, f"!on vps danger {mark}")
    request = await alice.wait_for(lambda e: e.reply_to == sent and "Request #" in e.body, timeout=15)
    assert fleet.by_user(request.sender) == "vps" and request.body.startswith("[vps] ")
    assert "On vps only" in request.body and "!on vps approve" in request.body
    # labelled for the shared room, and still ringing for the one who may approve
    assert request.content["msgtype"] == "m.text" and request.content["m.mentions"]["user_ids"] == [bob.user_id]
    await bob.react(fleet.room_id, request.event_id, "✅")
    await alice.wait_for(lambda e: e.reply_to == sent and fleet.by_user(e.sender) == "vps"
                         and "Request #" not in e.body, timeout=20)
    await asyncio.sleep(1.5)
    assert fleet.bots["vps"].bot.marks().count(mark) == 1
    assert all(mark not in fleet.bots[h].bot.marks() for h in ("nas", "box"))
    assert {fleet.by_user(e.sender) for e in alice.replies_to(sent)} == {"vps"}
    with sqlite3.connect(fleet.bots["vps"].bot.state_dir / "spbot.db") as db:
        rows = db.execute("SELECT host, result FROM audit WHERE command = 'danger' AND args LIKE ?",
                          (f"%{mark}%",)).fetchall()
    assert rows == [("vps", "requested"), ("vps", "ok")]


async def test_per_host_admins(fleet, erin):
    """erin is an admin of box only: box obeys her; nas tells her no, once; vps says nothing."""
    ok = await erin.send(fleet.room_id, "!on box ping")
    assert [fleet.by_user(e.sender) for e in await replies(erin, fleet, ok)] == ["box"]
    refused = await erin.send(fleet.room_id, "!on nas ping")
    got = await replies(erin, fleet, refused)
    assert [fleet.by_user(e.sender) for e in got] == ["nas"]
    assert "only take commands from this server's admins" in got[0].body


async def test_fleet_overview_and_a_silent_bot_reported_once(fleet, alice):
    box = fleet.bots["box"]
    stopped = time.monotonic()
    box.bot.stop()
    try:
        sent = await alice.send(fleet.room_id, "!fleet")
        reply = await alice.wait_for(lambda e: e.reply_to == sent and fleet.by_user(e.sender), timeout=15)
        assert "2 of 3 servers answered" in reply.body
        assert re.search(r"\[nas\] nas: up .* load", reply.body) and "[vps] vps: up" in reply.body
        assert "no answer in time: box" in reply.body
        alert = await alice.wait_for(lambda e: fleet.by_user(e.sender) and "box has not been heard from"
                                     in e.body, timeout=40)
        await asyncio.sleep(4)
        alerts = [e for e in alice.events if "box has not been heard from" in e.body and e.received > stopped]
        assert len(alerts) == 1 and fleet.by_user(alert.sender) in ("nas", "vps")
        assert alert.content["msgtype"] == "m.text" and alice.user_id in alert.content["m.mentions"]["user_ids"]
    finally:
        box.bot.start()
    await wait_answering_on(alice, box)
    back = await alice.wait_for(lambda e: fleet.by_user(e.sender) and "box is back" in e.body, timeout=30)
    await asyncio.sleep(4)
    assert len([e for e in alice.events if "box is back" in e.body and e.received > stopped]) == 1
    assert back.sender == alert.sender


async def test_a_new_device_of_a_bot_account_cannot_speak_for_it(fleet, alice, tmp_path_factory):
    """Someone logs in to vps's bot account and sends a forged answer and a forged claim that nas is
    down: the other bots ignore both (the new device is not signed by vps's pinned cross-signing identity)
    and each says so, once."""
    from spbot.chatclient import ChatClient
    vps = fleet.bots["vps"]
    intruder = await ChatClient(vps.synapse.url, vps.user_id, BOT_PASSWORD,
                                tmp_path_factory.mktemp("intruder"), device_name="not the bot").start()
    try:
        since = time.monotonic()
        sent = await alice.send(fleet.room_id, "!all ping")
        await intruder.send_encrypted(fleet.room_id, "org.spbot.fleet", {
            "kind": "answer", "host": "vps", "request": sent, "command": "!all ping", "body": "FORGED",
            "html": "FORGED"})
        await intruder.send_encrypted(fleet.room_id, "org.spbot.fleet", {
            "kind": "claim", "host": "vps", "about": "box", "outage": "box@forged", "state": "down",
            "since": time.time() - 3600})
        reply = await alice.wait_for(lambda e: e.reply_to == sent and fleet.by_user(e.sender), timeout=20)
        assert "FORGED" not in reply.body and "[vps] pong" in reply.body
        warned = await alice.wait_for(lambda e: "a new device of vps's bot account" in e.body, timeout=20)

        def warnings() -> list:
            return [e for e in alice.events if "a new device of vps's bot account" in e.body and e.received > since]
        deadline = time.monotonic() + 20                # the other bot's warning, on a loaded machine later
        while len(warnings()) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(3)                          # and no second one from either
        assert sorted(fleet.by_user(e.sender) for e in warnings()) == ["box", "nas"], warned.body
        assert not [e for e in alice.events if "box has not been heard from" in e.body and e.received > since]
    finally:
        await intruder.stop()
