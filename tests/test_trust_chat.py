"""Trust, end to end: the bot cross-signs its device (checked here with PyNaCl from /keys/query), keeps
its identity across restarts and a lost store, and under `device_policy = "cross-signed"` obeys only
admin devices signed by their pinned identity; an identity reset is refused until `!trust` is approved.
Fresh admin accounts, so identity resets here cannot disturb other tests."""
from __future__ import annotations

import asyncio
import json
import re
import shutil
import uuid

import httpx
import pytest
from canonicaljson import encode_canonical_json
from nacl.signing import VerifyKey
from unpaddedbase64 import decode_base64

from spbot.chatclient import ChatClient
from spbot.trust.own_identity import CrossSigning, cross_sign_nio_device

from .conftest import PASSWORD, wait_answering

pytestmark = pytest.mark.matrix


def _verify(signed: dict, user_id: str, key_id: str, public_key: str) -> bool:
    body = {k: v for k, v in signed.items() if k not in ("signatures", "unsigned")}
    signature = signed["signatures"][user_id][key_id]
    try:
        VerifyKey(decode_base64(public_key)).verify(encode_canonical_json(body), decode_base64(signature))
        return True
    except Exception:
        return False


def _keys_of(answer: dict, user_id: str, usage: str) -> tuple[dict, str, str]:
    key = answer[f"{usage}_keys"][user_id]
    key_id, public = next(iter(key["keys"].items()))
    return key, key_id, public


async def query(synapse, token: str, user_id: str) -> dict:
    async with httpx.AsyncClient(base_url=synapse.url, timeout=30) as http:
        response = await http.post("/_matrix/client/v3/keys/query",
                                   headers={"Authorization": f"Bearer {token}"},
                                   json={"device_keys": {user_id: []}})
        return response.json()


def assert_device_cross_signed(answer: dict, user_id: str, device_id: str) -> str:
    """Check master → self-signing → device signatures ourselves; returns the master key."""
    master, master_id, master_key = _keys_of(answer, user_id, "master")
    ssk, ssk_id, ssk_key = _keys_of(answer, user_id, "self_signing")
    assert _verify(ssk, user_id, master_id, master_key), "self-signing key not signed by the master key"
    device = answer["device_keys"][user_id][device_id]
    assert _verify(device, user_id, ssk_id, ssk_key), f"device {device_id} not signed by the self-signing key"
    return master_key


@pytest.fixture(scope="module")
async def world(synapse, make_bot, tmp_path_factory):
    suffix = uuid.uuid4().hex[:6]
    admins = [synapse.register(f"{n}{suffix}", PASSWORD) for n in ("tara", "ted", "tom")]
    bot = await make_bot(f"trust{suffix}", extra='device_policy = "cross-signed"\n', admins=admins,
                         members=admins)
    clients = {}
    for user_id in admins:
        client = ChatClient(synapse.url, user_id, PASSWORD, tmp_path_factory.mktemp("xs-client"))
        await client.start()
        status = await cross_sign_nio_device(client.client, tmp_path_factory.mktemp("xs-keys"), PASSWORD)
        assert status.device_signed
        clients[user_id] = client
    await asyncio.sleep(1)
    yield bot, admins, clients
    for client in clients.values():
        await client.stop()


async def test_bot_device_is_cross_signed(synapse, world):
    bot, admins, clients = world
    tara = clients[admins[0]]
    for _ in range(50):                      # the bot sets up its identity just after its first sync
        answer = await query(synapse, tara.client.access_token, bot.user_id)
        if bot.user_id in answer.get("master_keys", {}):
            break
        await asyncio.sleep(0.2)
    device_id = json.loads((bot.state_dir / "credentials.json").read_text())["device_id"]
    assert_device_cross_signed(answer, bot.user_id, device_id)
    assert oct((bot.state_dir / "cross_signing.json").stat().st_mode & 0o777) == "0o600"


async def test_cross_signed_admin_device_is_obeyed(world):
    bot, admins, clients = world
    reply = await clients[admins[0]].command(bot.room_id, "!ping", bot.user_id, timeout=30)
    assert reply.body.startswith("pong")


async def test_unverified_admin_device_is_refused(synapse, world, tmp_path):
    bot, admins, clients = world
    second = ChatClient(synapse.url, admins[0], PASSWORD, tmp_path / "tara-unverified")
    await second.start()
    try:
        await asyncio.sleep(1)
        reply = await second.command(bot.room_id, "!ping", bot.user_id, timeout=30)
        assert f"your device {second.device_id} is not verified" in reply.body
        assert "Settings → Sessions" in reply.body
        listing = await clients[admins[0]].command(bot.room_id, f"!devices {admins[0]}", bot.user_id)
        assert re.search(rf"{second.device_id}\s+.*refused \(not verified\)", listing.body), listing.body
        assert re.search(rf"{clients[admins[0]].device_id}\s+.*cross-signed", listing.body)
    finally:
        await second.stop()


async def test_identity_reset_is_refused_until_trusted(synapse, world, tmp_path):
    bot, admins, clients = world
    tara, ted, tom = (clients[a] for a in admins)
    await ted.command(bot.room_id, "!ping", bot.user_id, timeout=30)     # ted's identity is pinned
    new_ted = ChatClient(synapse.url, admins[1], PASSWORD, tmp_path / "ted-new")
    await new_ted.start()
    try:
        async with CrossSigning.from_nio(new_ted.client, password=PASSWORD) as signing:
            status = await signing.reset(PASSWORD, tmp_path / "ted-new-keys",
                                         new_ted.client.olm.account.identity_keys)
        assert status.device_signed
        await asyncio.sleep(1)
        refused = await new_ted.command(bot.room_id, "!ping", bot.user_id, timeout=30)
        assert f"the cross-signing identity of {admins[1]} changed" in refused.body
        alert = await tara.wait_for(lambda e: e.sender == bot.user_id and "🚨" in e.body
                                    and f"identity of {admins[1]} changed" in e.body, timeout=30)
        assert set(alert.content["m.mentions"]["user_ids"]) == {admins[0], admins[2]}, "not the reset admin"
        command_id = await tara.send(bot.room_id, f"!trust {admins[1]}")
        request = await tara.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                                      and e.body.startswith("🔐 Request #"), timeout=30)
        assert "pinned identity" in request.body and "new identity" in request.body
        request_id = int(re.match(r"🔐 Request #(\d+)", request.body).group(1))
        vote = await new_ted.command(bot.room_id, f"!approve {request_id}", bot.user_id, timeout=30)
        assert "changed" in vote.body, "the admin whose identity changed cannot approve"
        await tom.command(bot.room_id, f"!approve {request_id}", bot.user_id, timeout=30)
        await tara.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                            and "accepted the new identity" in e.body, timeout=30)
        reply = await new_ted.command(bot.room_id, "!ping", bot.user_id, timeout=30)
        assert reply.body.startswith("pong")
    finally:
        await new_ted.stop()


async def test_restart_keeps_the_identity_and_a_lost_store_is_resigned(synapse, world):
    bot, admins, clients = world
    tara = clients[admins[0]]
    token = tara.client.access_token
    before = await query(synapse, token, bot.user_id)
    old_device = json.loads((bot.state_dir / "credentials.json").read_text())["device_id"]
    master = assert_device_cross_signed(before, bot.user_id, old_device)
    bot.stop()
    bot.start()
    await wait_answering(tara, bot)
    after = await query(synapse, token, bot.user_id)
    assert assert_device_cross_signed(after, bot.user_id, old_device) == master
    bot.stop()
    shutil.rmtree(bot.state_dir / "crypto")
    (bot.state_dir / "credentials.json").unlink()
    bot.start()
    await wait_answering(tara, bot)
    new_device = json.loads((bot.state_dir / "credentials.json").read_text())["device_id"]
    assert new_device != old_device
    for _ in range(50):
        answer = await query(synapse, token, bot.user_id)
        if old_device not in answer["device_keys"].get(bot.user_id, {}):
            break
        await asyncio.sleep(0.2)
    assert assert_device_cross_signed(answer, bot.user_id, new_device) == master
    assert old_device not in answer["device_keys"][bot.user_id], "the old bot device was not deleted"
