"""Trust under recovery and edge cases, end to end (real Synapse, the bot as a process, nio clients with
their own cross-signing keys): a lost crypto store, a family of two admins re-trusting one of them,
`!trust` pinning exactly the key it showed, new devices announced, keys the bot cannot bind to a device,
`!devices` showing both views, refused votes answered, and console acceptances told in the room.
Fresh accounts in every fixture, so identity resets here disturb no other test."""
from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
import uuid

import pytest

from spbot.chatclient import ChatClient
from spbot.config import load_config
from spbot.trust.homeserver import matrix_http
from spbot.trust.identities import query_identity
from spbot.trust.own_identity import CrossSigning, cross_sign_nio_device
from spbot.trust.signing import format_fingerprint
from spbot.matrix import Connection, LoginFailed

from .conftest import PASSWORD, ROOT, wait_answering
from .test_trust_chat import assert_device_cross_signed, query

pytestmark = pytest.mark.matrix


def suffix() -> str:
    return uuid.uuid4().hex[:6]


def bot_said(bot, *parts: str):
    """A predicate: a message of the bot that contains every part."""
    return lambda e: e.sender == bot.user_id and all(p in e.body for p in parts)


def device_of(bot) -> str:
    return json.loads((bot.state_dir / "credentials.json").read_text())["device_id"]


async def signed_client(synapse, user_id: str, tmp_path_factory, keys_dir=None) -> ChatClient:
    """A logged-in client whose device is cross-signed (keys in `keys_dir`, made on first use)."""
    client = ChatClient(synapse.url, user_id, PASSWORD, tmp_path_factory.mktemp("client"))
    await client.start()
    status = await cross_sign_nio_device(client.client, keys_dir or tmp_path_factory.mktemp("keys"), PASSWORD)
    assert status.device_signed
    return client


async def reset_identity(synapse, user_id: str, tmp_path_factory, keys: dict | None = None
                         ) -> tuple[ChatClient, str]:
    """The admin resets their cross-signing identity from a new device; returns it and the new key.
    With `keys` (user → keys dir) the new keys dir is recorded there for `resign`."""
    client = ChatClient(synapse.url, user_id, PASSWORD, tmp_path_factory.mktemp("reset"))
    await client.start()
    keys_dir = tmp_path_factory.mktemp("reset-keys")
    async with CrossSigning.from_nio(client.client, password=PASSWORD) as signing:
        status = await signing.reset(PASSWORD, keys_dir, client.client.olm.account.identity_keys)
    assert status.device_signed
    if keys is not None:
        keys[user_id] = keys_dir
    await asyncio.sleep(0.5)
    return client, status.master_key


async def resign(client: ChatClient, keys_dir) -> None:
    """The admin verifies their older device with the new identity (as Element asks after a reset)."""
    status = await cross_sign_nio_device(client.client, keys_dir, PASSWORD)
    assert status.device_signed
    await asyncio.sleep(0.5)


async def request_of(client: ChatClient, bot, command_id: str):
    request = await client.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                                    and e.body.startswith("🔐 Request #"), timeout=30)
    return request, int(re.match(r"🔐 Request #(\d+)", request.body).group(1))


# --- a family of three admins, device_policy = cross-signed --------------------------------------------

@pytest.fixture(scope="module")
async def three(synapse, make_bot, tmp_path_factory):
    tag = suffix()
    admins = [synapse.register(f"{n}{tag}", PASSWORD) for n in ("una", "vic", "wes")]
    bot = await make_bot(f"recover3{tag}", extra='device_policy = "cross-signed"\n', admins=admins,
                         members=admins)
    keys = {a: tmp_path_factory.mktemp("keys") for a in admins}
    clients = {a: await signed_client(synapse, a, tmp_path_factory, keys[a]) for a in admins}
    await asyncio.sleep(1)
    for client in clients.values():              # every identity pinned before anything is reset
        assert (await client.command(bot.room_id, "!ping", bot.user_id, timeout=30)).body.startswith("pong")
    yield bot, admins, clients, keys
    for client in clients.values():
        await client.stop()


async def test_trust_pins_exactly_the_key_the_request_showed(synapse, three, tmp_path_factory):
    bot, (una, vic, wes), clients, keys = three
    new_vic, first_key = await reset_identity(synapse, vic, tmp_path_factory, keys)
    try:
        refused = await new_vic.command(bot.room_id, "!ping", bot.user_id, timeout=30)
        assert f"identity of {vic} changed" in refused.body
        command_id = await clients[una].send(bot.room_id, f"!trust {vic}")
        request, number = await request_of(clients[una], bot, command_id)
        assert format_fingerprint(first_key) in request.body and first_key in request.body
        # the identity moves again before anyone approves
        keys[vic] = tmp_path_factory.mktemp("again")
        async with CrossSigning.from_nio(new_vic.client, password=PASSWORD) as signing:
            second = await signing.reset(PASSWORD, keys[vic], new_vic.client.olm.account.identity_keys)
        await asyncio.sleep(0.5)
        await clients[wes].command(bot.room_id, f"!approve {number}", bot.user_id, timeout=30)
        failed = await clients[una].wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                                             and "nothing was pinned" in e.body, timeout=30)
        assert format_fingerprint(first_key) in failed.body and format_fingerprint(second.master_key) in failed.body
        still = await new_vic.command(bot.room_id, "!ping", bot.user_id, timeout=30)
        assert "changed" in still.body, "the unseen identity must not be obeyed"
        # the key shown now is the one that gets pinned
        command_id = await clients[una].send(bot.room_id, f"!trust {vic}")
        request, number = await request_of(clients[una], bot, command_id)
        assert second.master_key in request.body
        await clients[wes].command(bot.room_id, f"!approve {number}", bot.user_id, timeout=30)
        await clients[una].wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                                    and "accepted the new identity" in e.body, timeout=30)
        assert (await new_vic.command(bot.room_id, "!ping", bot.user_id, timeout=30)).body.startswith("pong")
        await resign(clients[vic], keys[vic])
    finally:
        await new_vic.stop()


async def test_refused_reaction_vote_gets_a_reply(synapse, three, tmp_path_factory):
    bot, (una, vic, wes), clients, keys = three
    new_wes, _ = await reset_identity(synapse, wes, tmp_path_factory, keys)
    try:
        await new_wes.command(bot.room_id, "!ping", bot.user_id, timeout=30)    # noticed as changed
        command_id = await clients[una].send(bot.room_id, f"!trust {wes}")
        request, number = await request_of(clients[una], bot, command_id)
        reaction = await new_wes.react(bot.room_id, request.event_id, "✅")
        answer = await clients[una].wait_for(
            lambda e: e.sender == bot.user_id and e.reply_to == request.event_id
            and "not counted" in e.body, timeout=30)
        assert f"identity of {wes} changed" in answer.body
        assert answer.content["m.mentions"]["user_ids"] == [wes]
        assert reaction
        await clients[vic].command(bot.room_id, f"!approve {number}", bot.user_id, timeout=30)
        await clients[una].wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                                    and "accepted the new identity" in e.body, timeout=30)
        await resign(clients[wes], keys[wes])
    finally:
        await new_wes.stop()


async def test_console_accept_is_told_in_the_room(synapse, three, tmp_path_factory):
    bot, (una, vic, wes), clients, keys = three
    new_una, key = await reset_identity(synapse, una, tmp_path_factory, keys)
    try:
        refused = await new_una.command(bot.room_id, "!ping", bot.user_id, timeout=30)
        assert "changed" in refused.body
        alert = await clients[vic].wait_for(bot_said(bot, "🚨", f"identity of {una} changed"), timeout=30)
        assert set(alert.content["m.mentions"]["user_ids"]) == {vic, wes}, "the alert goes to the others"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "spbot", "trust", "accept", una, "--config", str(bot.config_path),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, output.decode()
        notice = await clients[vic].wait_for(bot_said(bot, "resolved", f"new identity of {una}",
                                                      "spbot trust accept"), timeout=30)
        assert format_fingerprint(key) in notice.body
        assert (await new_una.command(bot.room_id, "!ping", bot.user_id, timeout=30)).body.startswith("pong")
        await resign(clients[una], keys[una])
    finally:
        await new_una.stop()


async def test_new_cross_signed_device_is_announced(synapse, three, tmp_path_factory):
    bot, (una, vic, wes), clients, keys = three
    await asyncio.sleep(0)
    second = await signed_client(synapse, vic, tmp_path_factory, keys[vic])
    try:
        await asyncio.sleep(1)
        reply = await second.command(bot.room_id, "!ping", bot.user_id, timeout=30)
        assert reply.body.startswith("pong")
        announced = await clients[una].wait_for(bot_said(bot, f"new device {second.device_id} of {vic}"),
                                                timeout=30)
        assert "verified by their cross-signing identity" in announced.body
        assert vic in announced.content["m.mentions"]["user_ids"]
    finally:
        await second.stop()


async def test_trust_for_an_admin_without_identity_is_refused_before_asking(synapse, make_bot):
    tag = suffix()
    admins = [synapse.register(f"{n}{tag}", PASSWORD) for n in ("xia", "yan")]
    bot = await make_bot(f"noid{tag}", admins=admins, members=admins)
    xia = ChatClient(synapse.url, admins[0], PASSWORD, bot.dir / "xia")
    await xia.start()
    try:
        await asyncio.sleep(1)
        command_id = await xia.send(bot.room_id, f"!trust {admins[1]}")
        reply = await xia.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id, timeout=30)
        assert "has no cross-signing identity" in reply.body and "internal error" not in reply.body
        await asyncio.sleep(1)
        assert not [e for e in xia.replies_to(command_id) if "Request #" in e.body]
    finally:
        await xia.stop()


# --- a family of two admins ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
async def two(synapse, make_bot, tmp_path_factory):
    tag = suffix()
    admins = [synapse.register(f"{n}{tag}", PASSWORD) for n in ("ann", "ben")]
    bot = await make_bot(f"recover2{tag}", admins=admins, members=admins,
                         extra='device_policy = "cross-signed"\n[trust]\nsole_admin_wait = "10s"\n')
    clients = {a: await signed_client(synapse, a, tmp_path_factory) for a in admins}
    await asyncio.sleep(1)
    for client in clients.values():
        assert (await client.command(bot.room_id, "!ping", bot.user_id, timeout=30)).body.startswith("pong")
    yield bot, admins, clients
    for client in clients.values():
        await client.stop()


async def test_two_admins_retrust_after_a_loud_wait(synapse, two, tmp_path_factory):
    bot, (ann, ben), clients = two
    new_ben, key = await reset_identity(synapse, ben, tmp_path_factory)
    try:
        assert "changed" in (await new_ben.command(bot.room_id, "!ping", bot.user_id, timeout=30)).body
        # the reset admin's own vote never counts, and is not counted as an eligible approver
        command_id = await clients[ann].send(bot.room_id, f"!trust {ben}")
        notice = await clients[ann].wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id,
                                             timeout=30)
        assert "🚨" in notice.body and "Request #" not in notice.body, notice.body
        assert format_fingerprint(key) in notice.body and f"!trust cancel {ben}" in notice.body
        assert set(notice.content["m.mentions"]["user_ids"]) == {ann, ben}
        assert "changed" in (await new_ben.command(bot.room_id, "!ping", bot.user_id, timeout=30)).body, \
            "nothing is accepted before the wait is over"
        done = await clients[ann].wait_for(bot_said(bot, f"new identity of {ben}", "accepted",
                                                    "nobody objected"), timeout=30)
        assert format_fingerprint(key) in done.body
        assert (await new_ben.command(bot.room_id, "!ping", bot.user_id, timeout=30)).body.startswith("pong")
    finally:
        await new_ben.stop()


async def test_two_admins_wait_cancelled_or_moved_pins_nothing(synapse, two, tmp_path_factory):
    bot, (ann, ben), clients = two
    ann_client = clients[ann]
    new_ben, key = await reset_identity(synapse, ben, tmp_path_factory)
    try:
        assert "changed" in (await new_ben.command(bot.room_id, "!ping", bot.user_id, timeout=30)).body
        # meanwhile no dangerous request counts ben as a possible approver: it would only expire
        danger = await ann_client.command(bot.room_id, f"!danger {suffix()}", bot.user_id, timeout=30)
        assert "there are only 0 other admins who can approve (1 more whose identity is not trusted now)" \
            in danger.body, danger.body
        await ann_client.command(bot.room_id, f"!trust {ben}", bot.user_id, timeout=30)
        cancelled = await ann_client.command(bot.room_id, f"!trust cancel {ben}", bot.user_id, timeout=30)
        assert "cancelled" in cancelled.body
        await asyncio.sleep(12)
        assert "changed" in (await new_ben.command(bot.room_id, "!ping", bot.user_id, timeout=30)).body
        # asked again, then the identity moves during the wait: the unseen key is not pinned
        await ann_client.command(bot.room_id, f"!trust {ben}", bot.user_id, timeout=30)
        async with CrossSigning.from_nio(new_ben.client, password=PASSWORD) as signing:
            await signing.reset(PASSWORD, tmp_path_factory.mktemp("moved"),
                                new_ben.client.olm.account.identity_keys)
        failed = await ann_client.wait_for(bot_said(bot, f"did not accept the identity of {ben}",
                                                    "changed again"), timeout=30)
        assert format_fingerprint(key) in failed.body
        assert "changed" in (await new_ben.command(bot.room_id, "!ping", bot.user_id, timeout=30)).body
    finally:
        await new_ben.stop()


# --- keys the bot cannot bind to a device ---------------------------------------------------------------

async def replace_device_keys(synapse, client: ChatClient, store_dir) -> ChatClient:
    """Another Olm account uploads its keys under `client`'s device id (same access token): the
    homeserver takes the new device keys. Returns a client speaking with those keys."""
    token, device_id = client.client.access_token, client.device_id
    store_dir.mkdir(parents=True, exist_ok=True)
    (store_dir / "credentials.json").write_text(json.dumps({"device_id": device_id, "access_token": token}))
    impostor = ChatClient(synapse.url, client.user_id, PASSWORD, store_dir)
    await impostor.start()
    async with matrix_http(synapse.url, token) as http:
        published = (await query_identity(http, client.user_id)).device(device_id)
    assert published.curve25519 == impostor.client.olm.account.identity_keys["curve25519"], \
        "the homeserver did not take the replaced keys"
    return impostor


@pytest.fixture(scope="module")
async def tofu(synapse, make_bot, tmp_path_factory):
    tag = suffix()
    admins = [synapse.register(f"{n}{tag}", PASSWORD) for n in ("zed", "zoe")]
    bot = await make_bot(f"unbound{tag}", admins=admins, members=admins)
    zed = ChatClient(synapse.url, admins[0], PASSWORD, tmp_path_factory.mktemp("zed"))
    await zed.start()
    await asyncio.sleep(1)
    assert (await zed.command(bot.room_id, "!ping", bot.user_id, timeout=30)).body.startswith("pong")
    yield bot, admins, zed
    await zed.stop()


async def test_replaced_device_key_is_announced_every_time_under_tofu(synapse, tofu, tmp_path_factory):
    bot, (zed_id, zoe_id), zed = tofu
    impostor = await replace_device_keys(synapse, zed, tmp_path_factory.mktemp("impostor"))
    new_key = impostor.client.olm.account.identity_keys["curve25519"]
    try:
        await asyncio.sleep(1)
        # the bot still encrypts to the key it bound the device to: the real device reads its answers
        for _ in range(2):
            command_id = await impostor.send(bot.room_id, "!ping")
            await zed.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                               and e.body.startswith("pong"), timeout=30)
        announced = [e for e in zed.events if e.sender == bot.user_id
                     and "cannot bind" in e.body and new_key[:8] in e.body]
        assert len(announced) == 2, "announced every time, naming the key"
        assert zed_id in announced[0].content["m.mentions"]["user_ids"]
        command_id = await zed.send(bot.room_id, f"!devices {zed_id}")
        listing = await zed.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id, timeout=30)
        old_key = zed.client.olm.account.identity_keys["curve25519"]
        assert new_key[:8] in listing.body and old_key[:8] in listing.body, listing.body
        assert "keys differ" in listing.body
    finally:
        await impostor.stop()


async def test_replaced_device_key_is_refused_under_cross_signed(synapse, three, tmp_path_factory):
    bot, (una, vic, wes), clients, keys = three
    victim = await signed_client(synapse, una, tmp_path_factory, keys[una])
    try:
        await asyncio.sleep(1)
        assert (await victim.command(bot.room_id, "!ping", bot.user_id, timeout=30)).body.startswith("pong")
        impostor = await replace_device_keys(synapse, victim, tmp_path_factory.mktemp("impostor3"))
        try:
            await asyncio.sleep(1)
            command_id = await impostor.send(bot.room_id, "!ping")
            refused = await victim.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                                            and e.decrypted, timeout=30)
            assert "I did not run this" in refused.body and "cannot bind" in refused.body
            assert impostor.client.olm.account.identity_keys["curve25519"][:8] in refused.body
        finally:
            await impostor.stop()
    finally:
        await victim.stop()


# --- the bot's own store lost, credentials kept -----------------------------------------------------------

async def test_lost_crypto_store_starts_a_new_signed_device(synapse, make_bot, tmp_path_factory):
    tag = suffix()
    admin = synapse.register(f"lou{tag}", PASSWORD)
    bot = await make_bot(f"lost{tag}", admins=[admin], members=[admin])
    lou = ChatClient(synapse.url, admin, PASSWORD, tmp_path_factory.mktemp("lou"))
    await lou.start()
    try:
        await asyncio.sleep(1)
        await wait_answering(lou, bot)
        old = device_of(bot)
        token = lou.client.access_token
        for _ in range(50):
            answer = await query(synapse, token, bot.user_id)
            if old in answer.get("device_keys", {}).get(bot.user_id, {}) and bot.user_id in answer.get("master_keys", {}):
                break
            await asyncio.sleep(0.2)
        master = assert_device_cross_signed(answer, bot.user_id, old)
        bot.stop()
        shutil.rmtree(bot.state_dir / "crypto")             # credentials.json stays
        bot.start()
        told = await lou.wait_for(bot_said(bot, f"did not match my device {old}"), timeout=60)
        new = device_of(bot)
        assert new != old and f"new device {new}" in told.body and f"deleted {old}" in told.body
        answer = await query(synapse, token, bot.user_id)
        assert assert_device_cross_signed(answer, bot.user_id, new) == master
        assert old not in answer["device_keys"][bot.user_id], "the old device is deleted"
        # a sender the bot never had a session with is understood
        fresh = ChatClient(synapse.url, admin, PASSWORD, tmp_path_factory.mktemp("lou2"))
        await fresh.start()
        try:
            await asyncio.sleep(1)
            assert (await fresh.command(bot.room_id, "!ping", bot.user_id, timeout=30)).body.startswith("pong")
        finally:
            await fresh.stop()
        assert "already exists" not in bot.log()
    finally:
        await lou.stop()


async def test_lost_crypto_store_with_only_a_token_says_what_to_do(synapse, tmp_path):
    user_id = synapse.register(f"tok{suffix()}", PASSWORD)
    state = tmp_path / "state"
    first = ChatClient(synapse.url, user_id, PASSWORD, tmp_path / "first")
    await first.start()                          # a device with keys on the homeserver
    token, device_id = first.client.access_token, first.device_id
    await first.stop()
    state.mkdir()
    (state / "credentials.json").write_text(json.dumps({"user_id": user_id, "device_id": device_id,
                                                        "access_token": token}))
    (tmp_path / "token").write_text(token)
    (tmp_path / "bot.toml").write_text(
        f'homeserver = "{synapse.url}"\nuser_id = "{user_id}"\naccess_token = {{ file = "{tmp_path / "token"}" }}\n'
        f'admins = ["{user_id}"]\nallow_any_admin_room = true\nstate_dir = "{state}"\n')
    connection = Connection(load_config(tmp_path / "bot.toml"))
    with pytest.raises(LoginFailed) as caught:
        await connection.login()
    message = str(caught.value)
    assert device_id in message and "credentials.json" in message and "access token" in message
    assert token not in message


async def test_cross_signing_failure_is_an_alert(synapse, make_bot, tmp_path_factory):
    tag = suffix()
    admin = synapse.register(f"cy{tag}", PASSWORD)
    bot = await make_bot(f"xsfail{tag}", admins=[admin], members=[admin])
    cy = ChatClient(synapse.url, admin, PASSWORD, tmp_path_factory.mktemp("cy"))
    await cy.start()
    try:
        await asyncio.sleep(1)
        await wait_answering(cy, bot)
        path = bot.state_dir / "cross_signing.json"
        for _ in range(50):
            if path.exists():
                break
            await asyncio.sleep(0.2)
        good = path.read_bytes()
        bot.stop()
        path.write_text("{ damaged")
        bot.start()
        alert = await cy.wait_for(bot_said(bot, "🚨", "could not cross-sign my device"), timeout=60)
        assert admin in alert.content["m.mentions"]["user_ids"]
        bot.stop()
        path.write_bytes(good)
        bot.start()
        await cy.wait_for(bot_said(bot, "resolved", "cross-signed again"), timeout=60)
    finally:
        await cy.stop()


# --- pins: exact keys, and who tells the room -------------------------------------------------------------

async def test_pins_accept_only_the_expected_key_and_remember_who_announces(tmp_path):
    from spbot.trust.pins import IdentityPins, KeyMoved
    from spbot.trust.signing import Ed25519Key
    from spbot.store import Store
    store = await Store(tmp_path / "pins.db").open()
    try:
        pins = IdentityPins(store)
        old, shown, unseen = (Ed25519Key.generate().public_key for _ in range(3))
        await pins.check("@a:x", old)
        assert (await pins.check("@a:x", unseen)).state == "changed"
        with pytest.raises(KeyMoved) as caught:
            await pins.accept("@a:x", unseen, expected=shown)
        assert format_fingerprint(shown) in str(caught.value) and format_fingerprint(unseen) in str(caught.value)
        assert await pins.pinned_key("@a:x") == old, "nothing pinned"
        await pins.accept("@a:x", shown, expected=shown, by="approved in the room")
        assert await pins.pinned_key("@a:x") == shown
        assert await pins.unannounced("@a:x") is None, "the bot announces its own acceptances at once"
        await pins.accept("@a:x", unseen, by="console", announced=False)
        assert (await pins.unannounced("@a:x"))["accepted_by"] == "console"
        await pins.mark_announced("@a:x")
        assert await pins.unannounced("@a:x") is None
        assert (await pins.check("@a:x", unseen)).state == "ok"
    finally:
        await store.close()
