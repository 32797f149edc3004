"""The fleet over real federation: two Synapses on loopback that federate (TLS listener with a
self-signed certificate, server names localhost:<port>), one bot on each, admins on both, one encrypted
room. Started for this module only, on free ports."""
from __future__ import annotations

import asyncio

import pytest

from spbot.chatclient import ChatClient
from spbot.devstack import Synapse, free_port

from .conftest import PASSWORD
from .fleet_kit import BOT_PASSWORD, Fleet, FleetBot, create_room, join_people, start_bots

pytestmark = pytest.mark.matrix


def federating(directory) -> Synapse:
    server = Synapse(directory, free_port(), federation_port=free_port())
    server.configure()
    return server


@pytest.fixture(scope="module")
def homeservers(tmp_path_factory):
    one, two = federating(tmp_path_factory.mktemp("hs-one")), federating(tmp_path_factory.mktemp("hs-two"))
    try:
        one.start()
        two.start()
        yield one, two
    finally:
        one.stop()
        two.stop()


@pytest.fixture(scope="module")
async def fed(homeservers, tmp_path_factory):
    one, two = homeservers
    alice = one.register("alice", PASSWORD)
    dan = two.register("dan", PASSWORD)                 # the cousin: admin of his box (on two) only
    nas = FleetBot("nas", one, one.register("spbot", BOT_PASSWORD, admin=True), [alice])
    box = FleetBot("box", two, two.register("spbot", BOT_PASSWORD, admin=True), [alice, dan])
    room = create_room(one, alice, [(two, dan), (one, nas.user_id), (two, box.user_id)], "Family (federated)")
    join_people(room, [(two, dan)])
    clients = {}
    for name, server, user in (("alice", one, alice), ("dan", two, dan)):
        clients[name] = await ChatClient(server.url, user, PASSWORD, tmp_path_factory.mktemp(f"fed-{name}")).start()
    fleet = Fleet(room, {"nas": nas, "box": box})
    try:
        await start_bots(fleet, tmp_path_factory.mktemp("fed-bots"), clients["alice"], default="nas",
                         answer_timeout=5, heartbeat=3, silent_after=12)
        yield fleet, clients
    finally:
        for fb in fleet.bots.values():
            if fb.bot is not None:
                fb.bot.stop()
        for client in clients.values():
            await client.stop()


async def test_bots_and_admins_on_two_homeservers(fed):
    fleet, clients = fed
    assert fleet.bots["nas"].user_id.split(":", 1)[1] != fleet.bots["box"].user_id.split(":", 1)[1]
    dan = clients["dan"]
    # From the second homeserver: the remote bot answers when addressed; the default when not.
    sent = await dan.send(fleet.room_id, "!on box ping")
    reply = await dan.wait_for(lambda e: e.reply_to == sent and fleet.by_user(e.sender), timeout=20)
    assert fleet.by_user(reply.sender) == "box" and reply.body.startswith("[box] pong")
    sent = await clients["alice"].send(fleet.room_id, "!ping")
    reply = await clients["alice"].wait_for(lambda e: e.reply_to == sent and fleet.by_user(e.sender), timeout=20)
    assert fleet.by_user(reply.sender) == "nas" and "this room's default" in reply.body


async def test_all_across_federation_is_one_labelled_reply(fed):
    fleet, clients = fed
    alice, dan = clients["alice"], clients["dan"]
    sent = await alice.send(fleet.room_id, "!all ping")    # seen from both homeservers
    reply = await dan.wait_for(lambda e: e.reply_to == sent and fleet.by_user(e.sender), timeout=20)
    assert "2 of 2 servers answered" in reply.body
    assert "[nas] pong" in reply.body and "[box] pong" in reply.body
    await asyncio.sleep(1.5)
    assert len([e for e in dan.replies_to(sent) if fleet.by_user(e.sender)]) == 1
    assert len([e for e in alice.replies_to(sent) if fleet.by_user(e.sender)]) == 1


async def test_all_from_an_admin_of_one_host_only(fed):
    """dan is an admin of box only: box answers his !all; nas stays quiet rather than refuse."""
    fleet, clients = fed
    dan = clients["dan"]
    sent = await dan.send(fleet.room_id, "!all ping")
    reply = await dan.wait_for(lambda e: e.reply_to == sent and fleet.by_user(e.sender), timeout=20)
    assert "1 of 2 servers answered" in reply.body and "[box] pong" in reply.body
    assert "no answer in time: nas" in reply.body
    await asyncio.sleep(1.5)
    assert len([e for e in dan.replies_to(sent) if fleet.by_user(e.sender)]) == 1


async def test_a_stopped_bot_is_reported_once_and_fleet_shows_it(fed):
    fleet, clients = fed
    alice, box = clients["alice"], fleet.bots["box"]
    box.bot.stop()
    try:
        alert = await alice.wait_for(lambda e: "box has not been heard from" in e.body, timeout=40)
        assert fleet.by_user(alert.sender) == "nas"
        sent = await alice.send(fleet.room_id, "!fleet")
        reply = await alice.wait_for(lambda e: e.reply_to == sent and fleet.by_user(e.sender), timeout=20)
        assert "1 of 2 servers answered" in reply.body and "[nas] nas: up" in reply.body
        assert "no answer in time: box (silent for" in reply.body
    finally:
        box.bot.start()
    await alice.wait_for(lambda e: "box is back" in e.body, timeout=40)
    await asyncio.sleep(3)
    assert len([e for e in alice.events if "box has not been heard from" in e.body]) == 1
    assert len([e for e in alice.events if "box is back" in e.body]) == 1
