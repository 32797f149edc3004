"""No secret at rest, through the real path: a bot process started under a permissive umask creates
a user by chat (the password goes to alice's private room), and afterwards no file of its state
directory (database, -wal, -shm, crypto store) holds the password's bytes, and every file and
directory there is private. A crypto store an older version pickled with nio's default key is taken
over: same device, still decrypting, and no longer readable with the default key."""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sqlite3
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from nio import AsyncClient, AsyncClientConfig, LoginResponse, RoomMessageText
from nio.crypto.sessions import InboundGroupSession, OlmAccount

from spbot.chatclient import ChatClient
from spbot.devstack import PlainSession
from spbot.matrix import key_upkeep

from . import conftest
from .conftest import BOT_PASSWORD, PASSWORD, wait_answering
from .test_users_chat import PASSWORD_RE, private_room

if TYPE_CHECKING:
    from spbot.devstack import Synapse

    from .conftest import TestBot

pytestmark = pytest.mark.matrix

TIMEOUT = 30
SUFFIX = secrets.token_hex(3)


@pytest.fixture(scope="module")
async def atrest_bot(make_bot) -> TestBot:
    """Started under umask 000: whatever the bot creates must be private anyway."""
    previous = os.umask(0)
    try:
        return await make_bot("atrest", extra="[users]\n")
    finally:
        os.umask(previous)


def files_holding(directory: Path, needle: bytes) -> list[str]:
    found = []
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
            found.append(str(path.relative_to(directory)))
    return found


def not_private(directory: Path) -> list[str]:
    """Paths under (and including) `directory` that group or others may use."""
    loose = []
    for path in [directory, *sorted(directory.rglob("*"))]:
        mode = os.lstat(path).st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            loose.append(f"{path.relative_to(directory.parent)} {stat.filemode(mode)}")
    return loose


async def until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.1)


def undelivered(alice: ChatClient, bot) -> str:
    """What alice saw from the bot and where the bot's outbox stands (no message text): seen once in
    CI, where the password message did not reach alice within the timeout."""
    seen = [(e.type, e.decrypted, e.body[:20]) for e in alice.events[-30:] if e.sender == bot.user_id]
    with sqlite3.connect(f"file:{bot.state_dir / 'spbot.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT id, room_id, secret, sent_at IS NOT NULL, failed, event_id FROM outbox "
                          "ORDER BY id DESC LIMIT 5").fetchall()
    return f"alice saw from the bot {seen}; the bot's last outbox rows {rows}"


async def test_a_delivered_password_rests_in_no_file(alice, atrest_bot, synapse):
    bot = atrest_bot
    user_id = f"@kid_{SUFFIX}:{synapse.server_name}"
    reply = await alice.command(bot.room_id, f"!user add kid_{SUFFIX}", bot.user_id, timeout=TIMEOUT)
    assert reply.body.startswith(f"✅ Created {user_id}"), reply.body
    room = await private_room(alice, bot)
    try:
        message = await alice.wait_for(lambda e: e.sender == bot.user_id
                                       and e.body.startswith(f"🔑 New account {user_id}"), TIMEOUT)
    except asyncio.TimeoutError:
        raise AssertionError(f"no password message in {room}: {undelivered(alice, bot)}") from None
    password = PASSWORD_RE.search(message.body).group(1).encode()

    await until(lambda: not files_holding(bot.state_dir, password), TIMEOUT,   # the bot may learn late that it was sent
                f"password still in {files_holding(bot.state_dir, password)}")
    await asyncio.sleep(1)            # and it stays gone while the bot goes on working
    assert (await alice.command(bot.room_id, "!ping", bot.user_id, timeout=TIMEOUT)).body
    assert files_holding(bot.state_dir, password) == []
    assert (bot.state_dir / "spbot.db-wal").stat().st_size < 1 << 20
    assert password.decode() not in bot.log()


async def test_every_file_of_the_state_dir_is_private_under_umask_000(alice, atrest_bot):
    bot = atrest_bot
    await alice.command(bot.room_id, f"!mark {SUFFIX}", bot.user_id, timeout=TIMEOUT)
    assert (bot.state_dir / "marks.txt").exists()
    assert not_private(bot.state_dir) == []

    # What an older version left readable is made private at the next start (still umask 000).
    bot.stop()
    (bot.state_dir / "spbot.db").chmod(0o644)
    (bot.state_dir / "crypto").chmod(0o755)
    (bot.state_dir / "marks.txt").chmod(0o666)
    (bot.state_dir / "old-report.txt").write_text("left by an older version\n")
    (bot.state_dir / "old-report.txt").chmod(0o644)
    previous = os.umask(0)
    try:
        bot.start()
    finally:
        os.umask(previous)
    await wait_answering(alice, bot)
    await alice.command(bot.room_id, f"!mark {SUFFIX}-again", bot.user_id, timeout=TIMEOUT)
    assert not_private(bot.state_dir) == []
    assert stat.S_IMODE((bot.state_dir / "crypto.key").stat().st_mode) == 0o600


# -- the crypto store's pickle key ---------------------------------------------------------


async def old_device(synapse: Synapse, user_id: str, room_id: str, state_dir: Path,
                     alice: ChatClient) -> tuple[str, dict]:
    """What an older spbot left behind: a device whose nio store is pickled with the default key,
    holding alice's room key (it decrypted her message), and credentials.json. Returns the device
    id and its identity keys."""
    store = state_dir / "crypto"
    store.mkdir(parents=True)
    client = AsyncClient(synapse.url, user_id, store_path=str(store),
                         config=AsyncClientConfig(store_sync_tokens=True, encryption_enabled=True))
    texts: list[str] = []

    async def record(room, event: RoomMessageText) -> None:
        texts.append(event.body)
    client.add_event_callback(record, RoomMessageText)
    try:
        response = await client.login(BOT_PASSWORD, device_name="spbot (older version)")
        assert isinstance(response, LoginResponse), response
        await client.join(room_id)
        await client.sync(timeout=0, full_state=True)
        await key_upkeep(client)
        await alice.wait_joined(room_id, user_id)
        text = f"hello old device {SUFFIX}"
        await alice.send(room_id, text)
        deadline = time.monotonic() + TIMEOUT
        while text not in texts:
            assert time.monotonic() < deadline, "the old device never decrypted alice's message"
            await client.sync(timeout=1000)
            await key_upkeep(client)
        (state_dir / "credentials.json").write_text(json.dumps({
            "user_id": user_id, "device_id": response.device_id, "access_token": response.access_token}))
        return response.device_id, dict(client.olm.account.identity_keys)
    finally:
        await client.close()


def store_rows(state_dir: Path) -> tuple[Path, tuple, list[tuple]]:
    [database] = list((state_dir / "crypto").glob("*.db"))
    db = sqlite3.connect(database)
    try:
        account = db.execute("SELECT id, account, shared FROM accounts").fetchone()
        inbound = db.execute(
            "SELECT session, fp_key, sender_key, room_id FROM megolminboundsessions").fetchall()
    finally:
        db.close()
    return database, account, inbound


async def test_a_default_key_store_is_rekeyed_and_keeps_its_device(synapse, people, alice, bob,
                                                                  tmp_path_factory):
    localpart = f"spbot-oldkey-{SUFFIX}"
    user_id = synapse.register(localpart, BOT_PASSWORD, admin=True)
    owner = PlainSession.login(synapse.url, alice.user_id, PASSWORD)
    room_id = owner.create_encrypted_room("Server admin (old key)", [user_id, bob.user_id])
    owner.logout()
    directory = tmp_path_factory.mktemp("bot-oldkey")
    bot = conftest.TestBot(synapse, directory, room_id, [alice.user_id, bob.user_id], user_id)
    device_id, identity = await old_device(synapse, user_id, room_id, bot.state_dir, alice)
    _, account, inbound = store_rows(bot.state_dir)
    assert inbound, "the old store holds no room key"
    OlmAccount.from_pickle(account[1], "DEFAULT_KEY", bool(account[2]))     # as older versions left it

    bot.start()
    try:
        await wait_answering(alice, bot)          # alice's room key, stored by the old device, still works
        log = bot.log()
        assert f"device_id={device_id}" in log or f'"device_id": "{device_id}"' in log, log[-2000:]
        assert "login_password" not in log and "crypto_store_rekeyed" in log
        bot.stop(signal.SIGKILL)
        bot.start()                               # the next start finds the store already re-keyed
        await wait_answering(alice, bot)
        assert bot.log().count("crypto_store_rekeyed") == 1
    finally:
        bot.stop(signal.SIGTERM)

    database, account, inbound = store_rows(bot.state_dir)
    assert database.name == f"{user_id}_{device_id}.db"
    key = (bot.state_dir / "crypto.key").read_text().strip()
    assert len(key) >= 32 and stat.S_IMODE((bot.state_dir / "crypto.key").stat().st_mode) == 0o600
    with pytest.raises(Exception):
        OlmAccount.from_pickle(account[1], "DEFAULT_KEY", bool(account[2]))
    assert OlmAccount.from_pickle(account[1], key, bool(account[2])).identity_keys == identity
    for session, fp_key, sender_key, room in inbound:
        InboundGroupSession.from_pickle(session, fp_key, sender_key, room, key)
