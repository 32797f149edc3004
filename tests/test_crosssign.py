"""Cross-signing of the bot's own device and checks of other users' identities, against the session's
real Synapse with real nio (vodozemac) devices. Signatures are checked again here with PyNaCl directly
(and with Synapse's signedjson), not only through the library under test."""
from __future__ import annotations

import json
import logging
import stat
import time
import uuid

import httpx
import pytest
from canonicaljson import encode_canonical_json
from nacl.signing import SigningKey, VerifyKey
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import verify_signed_json

from spbot.chatclient import ChatClient
from spbot.trust.errors import AuthFailed, AuthRequired, CrossSigningError
from spbot.trust.homeserver import matrix_http
from spbot.trust.identities import identity_from_query, query_identities, query_identity
from spbot.trust.own_identity import CrossSigning, cross_sign_nio_device
from spbot.trust.own_keys import STATE_FILE, OwnKeys, load_keys, save_keys
from spbot.trust.pins import IdentityPins
from spbot.trust.signing import Ed25519Key, decode_b64, encode_b64, format_fingerprint, verify_signature
from spbot.store import Store

from .conftest import PASSWORD

BOT_PW = "xsign bot password never to be logged"


def rand() -> str:
    return uuid.uuid4().hex[:8]


# --- independent verification (PyNaCl + canonicaljson, no library code) -------------------------------

def b64d(text: str) -> bytes:
    import base64
    return base64.b64decode(text + "=" * (-len(text) % 4))


def nacl_verify(obj: dict, user_id: str, key_id: str, public_b64: str) -> None:
    """Raises unless obj carries a valid signature by public_b64 under signatures[user_id][key_id]."""
    stripped = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    VerifyKey(b64d(public_b64)).verify(encode_canonical_json(stripped),
                                       b64d(obj["signatures"][user_id][key_id]))


def only_key(key_json: dict) -> tuple[str, str]:
    (key_id, public), = key_json["keys"].items()
    return key_id, public


class MemoryKV:
    def __init__(self):
        self.data: dict = {}

    async def get(self, key, default=None):
        return json.loads(json.dumps(self.data[key])) if key in self.data else default

    async def put(self, key, value):
        self.data[key] = json.loads(json.dumps(value))


class Captured(logging.Handler):
    """Every record of spbot.trust (cross-signing and the rest of trust) as text, fields included."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage() + " " + repr(getattr(record, "fields", {})))

    def __enter__(self):
        self.logger = logging.getLogger("spbot.trust")
        self.old_level = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self.old_level)


async def login(url: str, user_id: str, password: str) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.post("/_matrix/client/v3/login", json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id},
            "password": password, "initial_device_display_name": "xsign observer"})
        response.raise_for_status()
        data = response.json()
        return data["access_token"], data["device_id"]


async def raw_query(url: str, token: str, user_id: str) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        response = await http.post("/_matrix/client/v3/keys/query", json={"device_keys": {user_id: []}})
        response.raise_for_status()
        return response.json()


def assert_chain(answer: dict, user_id: str, device_id: str, device_keys: dict) -> str:
    """master → self-signing → device, verified with PyNaCl and with signedjson; returns the master key."""
    master_json = answer["master_keys"][user_id]
    assert master_json["usage"] == ["master"] and master_json["user_id"] == user_id
    master_id, master = only_key(master_json)
    assert master_id == f"ed25519:{master}" and len(b64d(master)) == 32
    ssk_json = answer["self_signing_keys"][user_id]
    assert ssk_json["usage"] == ["self_signing"]
    ssk_id, ssk = only_key(ssk_json)
    nacl_verify(ssk_json, user_id, master_id, master)
    device = answer["device_keys"][user_id][device_id]
    assert device["keys"][f"ed25519:{device_id}"] == device_keys["ed25519"]
    assert device["keys"][f"curve25519:{device_id}"] == device_keys["curve25519"]
    nacl_verify(device, user_id, f"ed25519:{device_id}", device_keys["ed25519"])
    nacl_verify(device, user_id, ssk_id, ssk)
    verify_signed_json(device, user_id, decode_verify_key_bytes(ssk_id, b64d(ssk)))
    verify_signed_json(ssk_json, user_id, decode_verify_key_bytes(master_id, b64d(master)))
    return master


def recording(http: httpx.AsyncClient) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    async def hook(request: httpx.Request) -> None:
        seen.append((request.method, request.url.path))
    http.event_hooks["request"].append(hook)
    return seen


UPLOADS = ("/_matrix/client/v3/keys/device_signing/upload", "/_matrix/client/v3/keys/signatures/upload")


# --- pure pieces -------------------------------------------------------------------------------------

def test_signing_matches_pynacl_and_signedjson():
    seed = bytes(range(32))
    key = Ed25519Key(seed)
    assert key.public_key == encode_b64(bytes(SigningKey(seed).verify_key))
    assert "=" not in key.public_key and key.key_id == f"ed25519:{key.public_key}"
    obj = {"b": [1, 2], "a": "é", "unsigned": {"x": 1}, "signatures": {"@o:x": {"ed25519:O": "zz"}}}
    signed = key.sign_json(obj, "@u:x")
    assert signed["signatures"]["@o:x"] == {"ed25519:O": "zz"}, "other signatures are kept"
    assert "signatures" in obj and "@u:x" not in obj["signatures"], "the input is not modified"
    nacl_verify(signed, "@u:x", key.key_id, key.public_key)
    verify_signed_json(signed, "@u:x", decode_verify_key_bytes(key.key_id, bytes(SigningKey(seed).verify_key)))
    assert verify_signature(signed, "@u:x", key.key_id, key.public_key)
    assert verify_signature({**signed, "unsigned": {"changed": True}}, "@u:x", key.key_id, key.public_key)
    assert not verify_signature({**signed, "b": [1, 3]}, "@u:x", key.key_id, key.public_key)
    assert not verify_signature(signed, "@u:x", key.key_id, Ed25519Key.generate().public_key)
    assert not verify_signature(signed, "@v:x", key.key_id, key.public_key)
    assert not verify_signature({"signatures": "junk"}, "@u:x", key.key_id, key.public_key)
    assert not verify_signature(signed, "@u:x", key.key_id, "not base64!")
    assert decode_b64(encode_b64(b"\x00\xff" * 7)) == b"\x00\xff" * 7
    assert repr(key) == f"Ed25519Key({key.public_key})" and encode_b64(seed) not in repr(key)
    with pytest.raises(ValueError):
        Ed25519Key(b"short")


def test_fingerprint_groups_of_four():
    key = Ed25519Key(b"\x01" * 32).public_key
    fp = format_fingerprint(key)
    assert fp.replace(" ", "") == key
    assert all(len(g) == 4 for g in fp.split()[:-1]) and len(fp.split()) == 11
    assert format_fingerprint(None) == "(none)"


def test_state_file_is_private_and_checked(tmp_path):
    keys = OwnKeys.generate("@a:x")
    path = tmp_path / "state" / STATE_FILE
    save_keys(path, keys)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_keys(path, "@a:x")
    assert again.master.public_key == keys.master.public_key
    assert again.self_signing.seed == keys.self_signing.seed
    assert encode_b64(keys.master.seed) not in repr(keys)
    path.chmod(0o644)
    load_keys(path, "@a:x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "loosened permissions are tightened"
    with pytest.raises(CrossSigningError, match="holds the keys of @a:x"):
        load_keys(path, "@b:x")
    data = json.loads(path.read_text())
    data["master_key"] = Ed25519Key.generate().public_key
    path.write_text(json.dumps(data))
    with pytest.raises(CrossSigningError, match="damaged") as caught:
        load_keys(path, "@a:x")
    assert data["master_seed"] not in str(caught.value)
    assert load_keys(tmp_path / "missing.json", "@a:x") is None


def test_identity_from_query_trusts_only_valid_chains():
    user = "@admin:x"
    keys = OwnKeys.generate(user)
    body = keys.upload_body()

    def make_device(device_id: str) -> dict:
        device_key = Ed25519Key.generate()
        device = {"user_id": user, "device_id": device_id, "algorithms": ["a"],
                  "keys": {f"ed25519:{device_id}": device_key.public_key,
                           f"curve25519:{device_id}": "c"}}
        device["signatures"] = {user: {f"ed25519:{device_id}": device_key.sign(device)}}
        return device

    device, other = make_device("DEV"), make_device("OTHER")
    signed_device = keys.self_signing.sign_json(device, user)
    answer = {"master_keys": {user: body["master_key"]},
              "self_signing_keys": {user: body["self_signing_key"]},
              "device_keys": {user: {"DEV": signed_device, "OTHER": other}}}
    ident = identity_from_query(user, answer)
    assert ident.master_key == keys.master.public_key
    assert ident.self_signing_key == keys.self_signing.public_key
    assert ident.device("DEV").cross_signed and ident.device("DEV").self_signed
    assert ident.device("OTHER").self_signed and not ident.device("OTHER").cross_signed
    assert ident.cross_signed_devices == ["DEV"] and ident.unsigned_devices == ["OTHER"]
    assert ident.problems == ()

    # a self-signing key the master did not sign (the server made it up): nothing is cross-signed
    forged_ssk = Ed25519Key.generate()
    forged = {**answer, "self_signing_keys": {user: {
        "user_id": user, "usage": ["self_signing"], "keys": {forged_ssk.key_id: forged_ssk.public_key}}},
        "device_keys": {user: {"DEV": forged_ssk.sign_json(device, user)}}}
    ident = identity_from_query(user, forged)
    assert ident.self_signing_key is None and not ident.device("DEV").cross_signed
    assert "self-signing key is not signed by the master key" in ident.problems

    # a device JSON changed after signing, or filed under another device id
    tampered = {**signed_device, "keys": {**signed_device["keys"], "curve25519:DEV": "d"}}
    moved = {**answer, "device_keys": {user: {"DEV": tampered, "EVIL": signed_device}}}
    ident = identity_from_query(user, moved)
    assert not ident.device("DEV").cross_signed and not ident.device("EVIL").cross_signed

    # no identity at all
    ident = identity_from_query(user, {"device_keys": {user: {"OTHER": other}}})
    assert not ident.has_identity and ident.fingerprint == "(none)"
    assert not ident.device("OTHER").cross_signed


async def test_identity_pins_first_use_change_accept(tmp_path):
    for kv in (MemoryKV(), await Store(tmp_path / "state.db").open()):
        pins = IdentityPins(kv)
        one, two = Ed25519Key.generate().public_key, Ed25519Key.generate().public_key
        assert (await pins.check("@a:x", None)).state == "no_identity"
        assert await pins.pinned_key("@a:x") is None
        first = await pins.check("@a:x", one)
        assert first.state == "pinned" and first.trusted and first.pinned_key == one
        assert (await pins.check("@a:x", one)).state == "ok"
        changed = await pins.check("@a:x", two)
        assert changed.state == "changed" and not changed.trusted
        assert changed.pinned_key == one and changed.master_key == two
        assert changed.pinned_fingerprint == format_fingerprint(one)
        assert (await pins.check("@a:x", two)).state == "changed", "the old pin stays"
        assert await pins.pending_key("@a:x") == two
        assert (await pins.check("@a:x", None)).pinned_key == one, "a vanished identity is not pinned"
        accepted = await pins.accept("@a:x", two)
        assert accepted.state == "pinned" and accepted.pinned_key == two
        assert (await pins.check("@a:x", two)).state == "ok"
        assert (await pins.check("@a:x", one)).state == "changed", "going back is a change too"
        assert (await pins.record("@a:x"))["history"][-1]["master_key"] == one
        assert (await pins.check("@b:x", one)).state == "pinned", "pins are per user"
        with pytest.raises(ValueError):
            await pins.accept("@a:x", None)
        await pins.forget("@a:x")
        assert (await pins.check("@a:x", one)).state == "pinned"
        if isinstance(kv, Store):
            await kv.close()


# --- against the real Synapse ------------------------------------------------------------------------

@pytest.fixture
async def clients():
    started: list[ChatClient] = []

    async def start(url, user_id, password, store_dir, name="spbot") -> ChatClient:
        client = ChatClient(url, user_id, password, store_dir, device_name=name)
        await client.start()
        started.append(client)
        return client
    yield start
    for client in started:
        await client.stop()


@pytest.mark.matrix
async def test_bot_creates_identity_signs_device_and_survives_restart_and_lost_store(
        synapse, clients, tmp_path):
    bot_id = synapse.register(f"xsign-bot-{rand()}", BOT_PW)
    observer_id = synapse.register(f"xsign-observer-{rand()}", PASSWORD)
    observer_token, _ = await login(synapse.url, observer_id, PASSWORD)
    state_dir = tmp_path / "state"
    bot = await clients(synapse.url, bot_id, BOT_PW, tmp_path / "nio1")
    own_keys = bot.client.olm.account.identity_keys

    before = identity_from_query(bot_id, await raw_query(synapse.url, observer_token, bot_id))
    assert not before.has_identity and not before.device(bot.device_id).cross_signed
    async with CrossSigning.from_nio(bot.client) as xs:
        assert (await xs.inspect(state_dir, own_keys)).state == "not_set_up"
        assert not (state_dir / STATE_FILE).exists()

    with Captured() as logs:
        started = time.perf_counter()
        async with CrossSigning.from_nio(bot.client, password=BOT_PW) as xs:
            status = await xs.ensure(state_dir, own_keys)
        setup_s = time.perf_counter() - started
        print(f"\ncross-signing setup (create, upload, sign, verify): {setup_s * 1000:.0f} ms")

        assert status.state == "created" and status.device_signed and status.healthy
        assert status.master_key == status.server_master_key and status.device_id == bot.device_id
        path = state_dir / STATE_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        stored = json.loads(path.read_text())
        assert stored["master_key"] == status.master_key and stored["user_id"] == bot_id

        # what any other account sees, checked with PyNaCl and signedjson here
        answer = await raw_query(synapse.url, observer_token, bot_id)
        assert assert_chain(answer, bot_id, bot.device_id, own_keys) == status.master_key
        assert only_key(answer["self_signing_keys"][bot_id])[1] == stored["self_signing_key"]
        async with matrix_http(synapse.url, observer_token) as http:
            seen = await query_identity(http, bot_id)
        assert seen.master_key == status.master_key and seen.device(bot.device_id).cross_signed
        assert seen.fingerprint == status.fingerprint

        # restart: same file, same master key, nothing uploaded
        async with CrossSigning.from_nio(bot.client) as xs:
            requests = recording(xs.http)
            again = await xs.ensure(state_dir, own_keys)
            assert (await xs.inspect(state_dir, own_keys)).state == "ok"
        assert again.state == "ok" and again.master_key == status.master_key and again.device_signed
        assert requests and not [r for r in requests if r[1] in UPLOADS]

        # lost crypto store: a new nio device of the same account gets signed by the same identity
        old_device = bot.device_id
        await bot.stop()
        bot2 = await clients(synapse.url, bot_id, BOT_PW, tmp_path / "nio2")
        assert bot2.device_id != old_device
        own2 = bot2.client.olm.account.identity_keys
        async with CrossSigning.from_nio(bot2.client, password=BOT_PW) as xs:
            assert (await xs.inspect(state_dir, own2)).state == "device_unsigned"
            new = await xs.ensure(state_dir, own2)
            assert new.state == "signed_new_device" and new.device_signed
            assert new.master_key == status.master_key
            answer = await raw_query(synapse.url, observer_token, bot_id)
            assert_chain(answer, bot_id, bot2.device_id, own2)
            ident = await xs.own_identity()
            assert ident.device(old_device).cross_signed and ident.device(bot2.device_id).cross_signed
            assert ident.user_signing_key == stored["user_signing_key"]

            # the old device goes, so clients stop encrypting to it
            with pytest.raises(CrossSigningError, match="own device"):
                await xs.delete_device(bot2.device_id, BOT_PW)
            assert await xs.delete_device(old_device, BOT_PW) is True
            assert old_device not in {d["device_id"] for d in await xs.list_devices()}
            assert old_device not in (await xs.own_identity()).devices
            assert await xs.delete_device(old_device, BOT_PW) is False
            assert (await xs.ensure(state_dir, own2)).state == "ok"

    secrets = [stored["master_seed"], stored["self_signing_seed"], stored["user_signing_seed"],
               bot2.client.access_token, BOT_PW]
    text = "\n".join(logs.lines)
    assert logs.lines and "cross_signing_created" in text
    for secret in secrets:
        assert secret not in text


@pytest.mark.matrix
async def test_device_with_keys_the_local_store_does_not_have_is_not_signed(synapse, clients, tmp_path):
    bot_id = synapse.register(f"xsign-bot-{rand()}", BOT_PW)
    bot = await clients(synapse.url, bot_id, BOT_PW, tmp_path / "nio")
    wrong = {"ed25519": Ed25519Key.generate().public_key,
             "curve25519": bot.client.olm.account.identity_keys["curve25519"]}
    async with CrossSigning.from_nio(bot.client) as xs:
        requests = recording(xs.http)
        with pytest.raises(CrossSigningError, match="differ from the local crypto store"):
            await xs.ensure(tmp_path / "state", wrong)
        assert requests and ("POST", UPLOADS[1]) not in requests
        assert not (await xs.own_identity()).device(bot.device_id).cross_signed


@pytest.mark.matrix
async def test_server_identity_differs_from_stored_is_mismatch_and_nothing_is_uploaded(
        synapse, clients, tmp_path):
    bot_id = synapse.register(f"xsign-bot-{rand()}", BOT_PW)
    bot = await clients(synapse.url, bot_id, BOT_PW, tmp_path / "nio")
    own_keys = bot.client.olm.account.identity_keys
    status = await cross_sign_nio_device(bot.client, tmp_path / "state", BOT_PW)
    assert status.state == "created"

    # the state directory holds another identity than the homeserver
    other_dir = tmp_path / "other"
    other = OwnKeys.generate(bot_id)
    save_keys(other_dir / STATE_FILE, other)
    file_before = (other_dir / STATE_FILE).read_bytes()
    async with CrossSigning.from_nio(bot.client, password=BOT_PW) as xs:
        requests = recording(xs.http)
        result = await xs.ensure(other_dir, own_keys)
        assert result.state == "mismatch" and not result.healthy
        assert result.master_key == other.master.public_key
        assert result.server_master_key == status.master_key
        assert result.device_signed, "the device is still signed by the identity the server publishes"
        assert "spbot trust reset" in result.detail and result.server_fingerprint in result.detail
        assert (await xs.inspect(other_dir, own_keys)).state == "mismatch"

        # no keys stored at all while the server has an identity: mismatch too, and no file appears
        empty_dir = tmp_path / "empty"
        lost = await xs.ensure(empty_dir, own_keys)
        assert lost.state == "mismatch" and lost.master_key is None
        assert not (empty_dir / STATE_FILE).exists()
    assert requests and all(m == "POST" and p == "/_matrix/client/v3/keys/query" for m, p in requests)
    assert (other_dir / STATE_FILE).read_bytes() == file_before
    async with CrossSigning.from_nio(bot.client) as xs:
        assert (await xs.own_identity()).master_key == status.master_key


@pytest.mark.matrix
async def test_admin_identity_devices_reset_and_pins(synapse, clients, tmp_path):
    admin_id = synapse.register(f"xsign-admin-{rand()}", PASSWORD)
    bot_id = synapse.register(f"xsign-bot-{rand()}", BOT_PW)
    bot_token, _ = await login(synapse.url, bot_id, BOT_PW)
    admin = await clients(synapse.url, admin_id, PASSWORD, tmp_path / "admin1", name="phone")
    admin_state = tmp_path / "admin-xs"
    status = await cross_sign_nio_device(admin.client, admin_state, PASSWORD)
    assert status.state == "created" and status.device_signed
    laptop = await clients(synapse.url, admin_id, PASSWORD, tmp_path / "admin2", name="laptop")

    pins = IdentityPins(MemoryKV())
    async with matrix_http(synapse.url, bot_token) as http:
        ident = await query_identity(http, admin_id)
        assert ident.master_key == status.master_key
        assert ident.self_signing_key is not None
        assert ident.user_signing_key is None, "other users' user-signing keys are not published"
        assert ident.device(admin.device_id).cross_signed is True
        assert ident.device(laptop.device_id).cross_signed is False
        assert ident.device(laptop.device_id).self_signed is True
        assert ident.device(laptop.device_id).display_name == "laptop"
        assert (await pins.check(admin_id, ident)).state == "pinned"
        assert (await pins.check(admin_id, ident)).state == "ok"

        async with CrossSigning.from_nio(admin.client) as xs:
            with pytest.raises(AuthRequired, match="needs the account's password"):
                await xs.delete_device(laptop.device_id)
            wrong = "wrong password 1234"
            with pytest.raises(AuthFailed) as caught:
                await xs.reset(wrong, admin_state)
            assert wrong not in str(caught.value) and wrong not in repr(caught.value)
            assert load_keys(admin_state / STATE_FILE, admin_id).master.public_key == status.master_key
            assert not list(admin_state.glob("*pending*"))
            assert (await xs.own_identity()).master_key == status.master_key

            # the admin resets its identity (new master key, password UIA)
            reset = await xs.reset(PASSWORD, admin_state)
            assert reset.state == "reset" and reset.master_key != status.master_key
            assert not reset.device_signed
            assert load_keys(admin_state / STATE_FILE, admin_id).master.public_key == reset.master_key

        after = await query_identity(http, admin_id)
        assert after.master_key == reset.master_key
        assert not after.device(admin.device_id).cross_signed, "signed by the old self-signing key only"
        changed = await pins.check(admin_id, after)
        assert changed.state == "changed" and changed.pinned_key == status.master_key
        assert (await pins.check(admin_id, after)).state == "changed"

        resigned = await cross_sign_nio_device(admin.client, admin_state, PASSWORD)
        assert resigned.state == "signed_new_device" and resigned.master_key == reset.master_key
        assert (await query_identity(http, admin_id)).device(admin.device_id).cross_signed

        assert (await pins.accept(admin_id, after)).state == "pinned"
        assert (await pins.check(admin_id, await query_identity(http, admin_id))).state == "ok"

        both = await query_identities(http, [admin_id, bot_id])
        assert both[admin_id].master_key == reset.master_key and not both[bot_id].has_identity
