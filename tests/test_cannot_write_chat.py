"""A bot that cannot write its state (a full or failing disk) says so in the room, ringing the admins,
instead of going silent; once it can write again it says that too and answers what was sent meanwhile.

The bot is a real process; its writes are made to fail for real by the kernel: its file-size limit
(RLIMIT_FSIZE, set from outside with prlimit) is lowered to 0, so every write that would grow a file
fails (EFBIG; SQLite reports "disk I/O error"), as a full disk fails every write that needs a new block.
Nothing on this machine is filled."""
from __future__ import annotations

import asyncio
import resource
import sqlite3
import subprocess
import sys

import pytest

from spbot.cannot_write import cannot_write

from .conftest import ROOT, wait_answering
from .test_outofband_chat import Receiver
from .test_room_keys import until_logged

pytestmark = pytest.mark.matrix
TIMEOUT = 60


@pytest.fixture(scope="module")
async def full_bot(make_bot):
    return await make_bot("nowrite")


async def test_a_bot_that_cannot_write_says_so_and_answers_once_it_can(alice, full_bot):
    bot = full_bot
    await wait_answering(alice, bot)
    pid = bot.process.running_pid()
    limits = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, limits[1]))
    try:
        sent = await alice.send(bot.room_id, "!ping")
        notice = await alice.wait_for(lambda e: e.sender == bot.user_id and "I cannot write to my disk" in e.body,
                                      TIMEOUT)
        await asyncio.sleep(3)               # the batch is tried again meanwhile: told once, nothing run
        assert not alice.replies_to(sent, bot.user_id)
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, limits)
    mentioned, _, text = notice.body.partition(": ")
    assert alice.user_id in mentioned.split() and text.startswith(
        f"⚠️ I cannot write to my disk (disk I/O error), so I cannot take commands now. The disk that holds "
        f"{bot.state_dir} is "), notice.body
    assert notice.body.endswith("Free space on the server, or check that disk for errors: I go on by myself "
                                "once I can write again, and answer the commands sent meanwhile."), notice.body
    assert notice.content["msgtype"] == "m.text" and alice.user_id in notice.content["m.mentions"]["user_ids"]

    back = await alice.wait_for(lambda e: e.sender == bot.user_id and "I can write to my disk again" in e.body,
                                TIMEOUT)
    assert back.content["msgtype"] == "m.text"
    pong = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == sent, TIMEOUT)
    assert pong.body.startswith("pong")
    assert len([e for e in alice.events if "I cannot write to my disk" in e.body]) == 1


def test_what_counts_as_a_disk_that_cannot_be_written(tmp_path):
    """SQLite's own error for a full database (max_page_count), an OS error, one that wraps them."""
    with sqlite3.connect(tmp_path / "db") as db:
        db.execute("CREATE TABLE t(x)")
        db.execute("PRAGMA max_page_count = 2")
        with pytest.raises(sqlite3.OperationalError) as full:
            db.execute("INSERT INTO t VALUES (?)", ("x" * 100_000,))
    assert str(full.value) == "database or disk is full" and cannot_write(full.value)
    assert cannot_write(OSError(28, "No space left on device"))
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as exc:
            raise RuntimeError("peewee-like wrapper") from exc
    except RuntimeError as wrapped:
        assert cannot_write(wrapped)
    assert not cannot_write(sqlite3.OperationalError("no such table: t"))
    assert not cannot_write(OSError(2, "No such file or directory"))
    assert not cannot_write(ValueError("x"))


async def test_a_bot_that_cannot_write_at_start_says_so_out_of_band_and_waits(alice, full_bot, tmp_path):
    """At start (the state directory's disk already full): before, a traceback at every start by systemd,
    every 5 s, and nobody told. Now one plain line, one message through the out-of-band channel (a local
    web hook here), and the process waits, trying a write, until it can: then it ends for systemd to
    start it as usual."""
    bot, receiver = full_bot, Receiver()
    (tmp_path / "hook").write_text(f"json://127.0.0.1:{receiver.port}/alerts\n")
    config = tmp_path / "bot.toml"
    config.write_text(bot.config_path.read_text() + f'\n[outofband]\nurls = [{{file = "{tmp_path / "hook"}"}}]\n')
    bot.stop()
    started = subprocess.Popen(["prlimit", "--fsize=0:unlimited", sys.executable, "-m", "spbot", "run", "--config",
                                str(config)], stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        for _ in range(TIMEOUT * 4):
            if receiver.bodies or started.poll() is not None:
                break
            await asyncio.sleep(0.25)
        assert receiver.bodies, "nothing out of band"
        told = receiver.bodies[0]
        assert told["title"] == "spbot: cannot start"
        assert f"I cannot write to my state directory {bot.state_dir} (File too large)" in told["message"]
        await asyncio.sleep(2)
        assert started.poll() is None, "it ended instead of waiting"
        resource.prlimit(started.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        assert await asyncio.to_thread(started.wait, 30) == 1
        errors = started.stderr.read()
    finally:
        if started.poll() is None:
            started.kill()
        bot.start()
    assert f"I cannot write to my state directory {bot.state_dir}" in errors and "again: starting" in errors
    assert "Traceback" not in errors and len(receiver.bodies) == 1
    await wait_answering(alice, bot)


async def bot_with_a_hook(make_bot, name: str, tmp_path):
    """A bot whose out-of-band channel is a local web hook, with a grace time of 2 s; and the hook."""
    receiver = Receiver()
    (tmp_path / "hook").write_text(f"json://127.0.0.1:{receiver.port}/alerts\n")
    bot = await make_bot(name, extra=f'\n[outofband]\nurls = [{{file = "{tmp_path / "hook"}"}}]\ngrace = "2s"\n')
    return bot, receiver


async def start_up_written(bot) -> None:
    """Until the bot has written what its start brings: it answers before its cross-signing is set up,
    and the next sync (its own device list changed) stores device keys. A write refused then leaves the
    bot retrying that step (it rightly says it cannot write) instead of reaching the outage at all."""
    await until_logged(bot, "spbot.trust.own_device cross_signing ", "the bot never set up its cross-signing",
                       TIMEOUT)
    await asyncio.sleep(2)                  # the sync that brings its own new keys, and their query


def writes_refused(bot) -> tuple[int, tuple[int, int]]:
    """The running bot's file-size limit lowered to 0 (its hard limit kept, to be put back); its pid and
    the limits to put back."""
    pid = bot.process.running_pid()
    limits = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, limits[1]))
    return pid, limits


async def test_a_running_bot_that_cannot_write_tells_the_out_of_band_channel_after_its_grace(make_bot, alice,
                                                                                             tmp_path):
    """The room is told at once; the out-of-band channel too once the grace time has passed (its relay keeps
    its queue on the full disk, and the homeserver there may be down as well), and again when it can write."""
    bot, receiver = await bot_with_a_hook(make_bot, "nowrite-oob", tmp_path)
    pid, limits = writes_refused(bot)
    try:
        sent = await alice.send(bot.room_id, "!ping")
        await alice.wait_for(lambda e: e.sender == bot.user_id and "I cannot write to my disk" in e.body, TIMEOUT)
        for _ in range(TIMEOUT * 4):
            if receiver.bodies:
                break
            await asyncio.sleep(0.25)
        assert [b["title"] for b in receiver.bodies] == ["spbot: cannot write"]
        assert f"I cannot write to my state directory {bot.state_dir}" in receiver.bodies[0]["message"]
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, limits)
    await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == sent, TIMEOUT)
    for _ in range(TIMEOUT * 4):
        if len(receiver.bodies) > 1:
            break
        await asyncio.sleep(0.25)
    assert [b["title"] for b in receiver.bodies] == ["spbot: cannot write", "spbot: can write again"]


async def test_the_homeserver_down_and_a_full_disk_still_reach_the_out_of_band_channel(synapse, make_bot, alice,
                                                                                       tmp_path):
    """A disk full under both the homeserver and the bot: the outage could not be recorded, so its
    out-of-band message (queued in the state database) was never sent; now it is sent from memory."""
    bot, receiver = await bot_with_a_hook(make_bot, "nowrite-outage", tmp_path)
    await start_up_written(bot)
    pid, limits = writes_refused(bot)
    synapse.stop()
    try:
        for _ in range(TIMEOUT * 4):
            if receiver.bodies:
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(3)                          # and only once
    finally:
        synapse.start()
        resource.prlimit(pid, resource.RLIMIT_FSIZE, limits)
    assert len(receiver.bodies) == 1, receiver.bodies
    assert "cannot be reached since" in receiver.bodies[0]["message"]
    assert "My own disk is full too" in receiver.bodies[0]["message"]
    await wait_answering(alice, bot, timeout=90)

