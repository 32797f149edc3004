"""How the bots of a fleet trust each other, end to end (one Synapse, two bots as real processes, fresh
bot accounts so that the identity reset here disturbs no other test): each bot pins the other's
cross-signing identity on first contact (told once); a peer restarted with its store kept, or with its
crypto store lost (a new device, signed by the same identity), is trusted without anyone doing
anything; a peer whose identity was reset (`spbot trust reset`, the real console command) is ignored and
reported once, until `!fleet trust` is requested by one admin and approved by another, which pins
exactly the new identity. (A forged event from an unsigned device of a bot account: see
tests/test_fleet.py.)"""
from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
import uuid

import pytest

from spbot.trust.homeserver import matrix_http
from spbot.trust.identities import query_identity
from spbot.trust.signing import format_fingerprint

from .conftest import ROOT
from .fleet_kit import BOT_PASSWORD, Fleet, FleetBot, create_room, join_people, start_bots, wait_answering_on

pytestmark = pytest.mark.matrix
CHANGED = "the cross-signing identity of box's bot changed"
UNSIGNED = "a new device of box's bot account"


@pytest.fixture(scope="module")
async def pair(synapse, people, alice, bob, tmp_path_factory) -> Fleet:
    a, b = people["alice"].user_id, people["bob"].user_id
    tag = uuid.uuid4().hex[:6]
    bots = {host: FleetBot(host, synapse, synapse.register(f"spbot-trust-{host}-{tag}", BOT_PASSWORD, admin=True),
                           [a, b]) for host in ("nas", "box")}
    room = create_room(synapse, a, [(synapse, b)] + [(synapse, fb.user_id) for fb in bots.values()],
                       "Fleet trust (tests)")
    join_people(room, [(synapse, b)])
    fleet = Fleet(room, bots)
    await start_bots(fleet, tmp_path_factory.mktemp("fleet-trust"), alice, default="nas", silent_after=120)
    yield fleet
    for fb in bots.values():
        fb.bot.stop()


def device_of(fb: FleetBot) -> str:
    return json.loads((fb.bot.state_dir / "credentials.json").read_text())["device_id"]


async def master_key(alice, fb: FleetBot, device: str) -> str:
    """The bot account's master key once `device` is published cross-signed by it."""
    async with matrix_http(fb.synapse.url, alice.client.access_token) as http:
        for _ in range(100):
            identity = await query_identity(http, fb.user_id)
            signed = identity.device(device)
            if signed is not None and signed.cross_signed:
                return identity.master_key
            await asyncio.sleep(0.3)
    raise AssertionError(f"{fb.host}'s device {device} is never cross-signed")


async def all_ping(alice, fleet: Fleet):
    sent = await alice.send(fleet.room_id, "!all ping")
    return await alice.wait_for(lambda e: e.reply_to == sent and fleet.by_user(e.sender) == "nas", timeout=30)


async def box_answers_nas(alice, fleet: Fleet, attempts: int = 5):
    """`!all ping` until nas's gathered reply carries box's answer (box's first events after a start may
    precede its keys reaching nas); the last reply."""
    for _ in range(attempts):
        reply = await all_ping(alice, fleet)
        if "[box] pong" in reply.body:
            return reply
        await asyncio.sleep(2)
    return reply


def said_since(alice, since: float, text: str):
    return [e for e in alice.events if text in e.body and e.received > since]


async def test_first_contact_pins_each_identity_and_says_so_once(pair, alice):
    nas, box = pair.bots["nas"], pair.bots["box"]
    box_key = await master_key(alice, box, device_of(box))
    told = await alice.wait_for(lambda e: e.sender == nas.user_id and "🔑 I know the other bots" in e.body,
                                timeout=30)
    assert f"box {format_fingerprint(box_key)}" in told.body, told.body
    assert "[box] pong" in (await box_answers_nas(alice, pair)).body
    await asyncio.sleep(2)
    assert len([e for e in alice.events if e.sender == nas.user_id and "🔑 I know" in e.body]) == 1


async def test_a_restarted_peer_is_trusted_without_anyone_doing_anything(pair, alice):
    """Restarted with its store kept (same device), then with its crypto store lost (a new device, which
    it signs with the identity it kept): nas takes box's answers both times and warns of nothing."""
    box = pair.bots["box"]
    since = time.monotonic()
    key = await master_key(alice, box, device_of(box))
    box.bot.stop()
    box.bot.start()
    await wait_answering_on(alice, box)
    assert "[box] pong" in (await box_answers_nas(alice, pair)).body
    old = device_of(box)
    box.bot.stop()
    shutil.rmtree(box.bot.state_dir / "crypto")               # credentials.json and cross_signing.json stay
    box.bot.start()
    await wait_answering_on(alice, box)
    new = device_of(box)
    assert new != old
    assert await master_key(alice, box, new) == key, "the same identity signed the new device"
    reply = await box_answers_nas(alice, pair)
    assert "[box] pong" in reply.body and "2 of 2 servers answered" in reply.body, reply.body
    await asyncio.sleep(3)
    assert not said_since(alice, since, UNSIGNED) and not said_since(alice, since, CHANGED)


async def test_a_changed_identity_is_ignored_until_fleet_trust_is_approved(pair, alice, bob):
    nas, box = pair.bots["nas"], pair.bots["box"]
    since = time.monotonic()
    old_key = await master_key(alice, box, device_of(box))
    box.bot.stop()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "spbot", "trust", "reset", "--config", str(box.bot.config_path),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    box.bot.start()
    await wait_answering_on(alice, box)
    new_key = await master_key(alice, box, device_of(box))
    assert new_key != old_key
    warned = await alice.wait_for(lambda e: e.sender == nas.user_id and CHANGED in e.body, timeout=30)
    assert "fleet trust box" in warned.body
    refused = await all_ping(alice, pair)
    assert "[box]" not in refused.body and "no answer in time: box" in refused.body, refused.body

    asked = await alice.send(pair.room_id, "!on nas fleet trust box")
    request = await alice.wait_for(lambda e: e.reply_to == asked and e.sender == nas.user_id, timeout=30)
    assert "Request #" in request.body and new_key in request.body, request.body
    assert not said_since(alice, since, "I trust box's bot again"), "nothing is pinned before the approval"
    await bob.react(pair.room_id, request.event_id, "✅")
    done = await alice.wait_for(lambda e: e.reply_to == asked and e.sender == nas.user_id
                                and "I trust box's bot again" in e.body, timeout=30)
    assert format_fingerprint(new_key) in done.body
    reply = await box_answers_nas(alice, pair)
    assert "[box] pong" in reply.body and "2 of 2 servers answered" in reply.body, reply.body
    assert len([e for e in said_since(alice, since, CHANGED) if e.sender == nas.user_id]) == 1
    again = await alice.command(pair.room_id, "!on nas fleet trust box", nas.user_id, timeout=30)
    assert "nothing to accept" in again.body
