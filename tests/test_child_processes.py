"""No child outlives a killed bot: the kernel kills what the bot started when it dies, what is left in
their sessions is ended at the next start (never a process that merely reuses a recorded pid), and
the "job interrupted" report says what was cut short. The restic password is never left on disk.

The chat tests kill -9 a real bot during a real restic restore (held on a repository pack file that
is a FIFO, as on a hung disk) and during a backup's pre command whose own child outlives its shell."""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from spbot.system import children
from tests.fakebin import FakeBin, Rule
from tests.test_approvals import request_for, result_reply
from tests.test_backup_chat import backup_config, from_bot, new_repository, snapshot_id
from tests.test_backup_chat import PASSWORD as RESTIC_PASSWORD

if TYPE_CHECKING:
    from .conftest import TestBot

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- helpers


def gone(pid: int, start: int) -> bool:
    """The process is no more (or only a zombie, or the pid is another process's now)."""
    stat = children.read_stat(pid)
    return stat is None or stat.start != start or stat.state == "Z"


def wait_gone(pid: int, start: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid, start):
            return True
        time.sleep(0.05)
    return False


def start_unrelated(*argv: str) -> subprocess.Popen:
    """A process this test starts itself, in its own session, as another program would."""
    return subprocess.Popen(list(argv) or ["sleep", "60"], start_new_session=True)


def session_of(pid: int) -> list[children.ProcStat]:
    found = [children.read_stat(int(p)) for p in os.listdir("/proc") if p.isdigit()]
    return [s for s in found if s is not None and s.session == pid and s.state != "Z"]


def sleeping_in(session: int) -> list[children.ProcStat]:
    return [s for s in session_of(session) if s.pid != session and s.name == "sleep"]


@pytest.fixture
def record(tmp_path):
    """Recording into tmp_path for the test's duration (other tests in this process record nothing)."""
    children.start_recording(tmp_path)
    yield tmp_path
    children.stop_recording()


def rewrite_record(state_dir: Path, **changes) -> None:
    """Change the record as if it had been written at another time (by another boot, or about an
    older process that had the same pid)."""
    path = state_dir / children.RECORD_NAME
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if key == "boot_id":
            data["boot_id"] = value
        else:
            for child in data["children"]:
                child[key] = value(child[key]) if callable(value) else value
    path.write_text(json.dumps(data))


# --------------------------------------------------------------------------- dying with the bot

_STARTER = """
import asyncio, sys
from pathlib import Path
from spbot.system import children
from spbot.system.proc import run
children.start_recording(Path(sys.argv[1]))
asyncio.run(run(["sleep", "60"], timeout=120))
"""


def start_starter(state_dir: Path) -> tuple[subprocess.Popen, dict]:
    """A process that runs `sleep 60` through proc.run, recording into state_dir; and the record."""
    starter = subprocess.Popen([sys.executable, "-c", _STARTER, str(state_dir)], cwd=ROOT)
    record_path = state_dir / children.RECORD_NAME
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        data = json.loads(record_path.read_text()) if record_path.exists() else {"children": []}
        if data["children"]:
            return starter, data["children"][0]
        time.sleep(0.05)
    starter.kill()
    raise AssertionError("the starter never recorded its child")


def test_a_child_dies_with_the_process_that_started_it(tmp_path):
    starter, child = start_starter(tmp_path)
    try:
        assert children.read_stat(child["pid"]).name == "sleep" and child["label"] == "sleep"
    finally:
        starter.kill()
        starter.wait()
    assert wait_gone(child["pid"], child["start"], timeout=3), "sleep outlived the process that started it"


def test_the_children_of_a_live_bot_on_the_same_state_dir_are_left_alone(tmp_path):
    starter, child = start_starter(tmp_path)
    try:
        assert children.end_leftovers(tmp_path, grace=1) == []
        assert not gone(child["pid"], child["start"])
    finally:
        starter.kill()
        starter.wait()


# --------------------------------------------------------------------------- ending leftovers at start


def test_a_recorded_child_still_running_is_ended_and_told(record):
    other = start_unrelated("sleep", "60")
    try:
        start = children.read_stat(other.pid).start
        children.track(other.pid, "restic restore", "the restore may be partial: run it again")
        children.stop_recording()

        [left] = children.end_leftovers(record, grace=2)

        assert wait_gone(other.pid, start, timeout=1)
        assert [p.pid for p in left.ended] == [other.pid] and left.was_running
        assert left.sentence() == (f"restic restore (pid {other.pid}) was still running and has been "
                                   "stopped; the restore may be partial: run it again")
    finally:
        other.kill()
        other.wait()


def test_a_process_that_reuses_a_recorded_pid_is_left_alone(record):
    other = start_unrelated("sleep", "60")
    try:
        start = children.read_stat(other.pid).start
        children.track(other.pid, "restic backup")
        children.stop_recording()
        # The record is about an older process that had this pid and ended long ago.
        rewrite_record(record, start=lambda s: s - 5000)

        [left] = children.end_leftovers(record, grace=2)

        assert not gone(other.pid, start) and other.poll() is None
        assert left.ended == [] and not left.was_running
        assert left.sentence() == f"restic backup (pid {other.pid}) was running and ended with the bot"
    finally:
        other.kill()
        other.wait()


def test_a_record_from_before_a_reboot_ends_nothing(record):
    other = start_unrelated("sleep", "60")
    try:
        start = children.read_stat(other.pid).start
        children.track(other.pid, "sleep")
        children.stop_recording()
        rewrite_record(record, boot_id="an earlier boot")

        [left] = children.end_leftovers(record, grace=2)

        assert not gone(other.pid, start) and left.ended == []
    finally:
        other.kill()
        other.wait()


def test_what_a_dead_child_left_in_its_session_is_ended_and_nothing_else(record):
    shell = start_unrelated("sh", "-c", "sleep 60; true")
    bystander = start_unrelated("sleep", "60")   # started later, in a session of its own
    try:
        children.track(shell.pid, "sh")
        children.stop_recording()
        deadline = time.monotonic() + 5
        # the shell's fork is named "sh" until it has exec'd sleep: wait for the name too
        while not sleeping_in(shell.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        [grandchild] = sleeping_in(shell.pid)
        shell.kill()     # what the death signal does to the direct child when the bot dies
        shell.wait()

        [left] = children.end_leftovers(record, grace=2)

        assert wait_gone(grandchild.pid, grandchild.start, timeout=1)
        assert bystander.poll() is None
        assert [p.pid for p in left.ended] == [grandchild.pid]
        assert left.sentence() == (f"sh (pid {shell.pid}) was running and ended with the bot; sleep (pid "
                                   f"{grandchild.pid}), started by it, was still running and has been stopped")
    finally:
        bystander.kill()
        bystander.wait()
        for stat in session_of(shell.pid):
            os.kill(stat.pid, signal.SIGKILL)


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(record):
    stubborn = subprocess.Popen([sys.executable, "-c",
                                 "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                                 "print('ready', flush=True); time.sleep(60)"],
                                start_new_session=True, stdout=subprocess.PIPE)
    try:
        assert stubborn.stdout.readline() == b"ready\n"     # SIGTERM is ignored from here on
        start = children.read_stat(stubborn.pid).start
        children.track(stubborn.pid, "stubborn")
        children.stop_recording()
        began = time.monotonic()

        [left] = children.end_leftovers(record, grace=1)

        assert gone(stubborn.pid, start) or stubborn.poll() == -signal.SIGKILL
        assert 1 <= time.monotonic() - began < 4 and [p.pid for p in left.ended] == [stubborn.pid]
    finally:
        stubborn.kill()
        stubborn.communicate()


def test_old_password_files_are_removed_and_nothing_else(tmp_path):
    (tmp_path / "restic-pw-abc123").write_text("old password\n")
    (tmp_path / "restic-password").write_text("the real one\n")

    assert children.remove_old_password_files(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["restic-password"]


# --------------------------------------------------------------------------- through the real bot


def chat(test):
    return pytest.mark.matrix(pytest.mark.skipif(shutil.which("restic") is None,
                                                 reason="restic is not installed")(test))


@dataclass
class World:
    bot: "TestBot"
    root: Path
    repo: Path
    bins: FakeBin


@pytest.fixture(scope="module")
async def world(make_bot, tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("children")
    (root / "live" / "data").mkdir(parents=True)
    (root / "live" / "data" / "only-file.bin").write_bytes(os.urandom(200_000))  # one data blob, one pack
    (root / "live" / "waits").mkdir()
    (root / "live" / "waits" / "note").write_text("a service whose pre command hangs\n")
    repo, password_file = await new_repository(root)
    bins = FakeBin(root)
    bins.add("systemctl", [Rule(match=["**"])])
    services = f"""
[backup.services.data]
paths = ["{root}/live/data"]
[backup.services.waits]
paths = ["{root}/live/waits"]
pre = [["sh", "-c", "sleep 300; true"]]
"""
    extra = backup_config(f'kind = "local"\npath = "{repo}"', password_file, bins, services)
    bot = await make_bot("children", extra=extra, env=bins.env())
    return World(bot, root, repo, bins)


def processes_mentioning(text: str) -> list[children.ProcStat]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        stat = children.read_stat(int(name))
        if text in cmdline and stat is not None and stat.state != "Z":
            found.append(stat)
    return found


def files_holding(directory: Path, secret: str, pattern: str = "**/*") -> list[Path]:
    hits = []
    for path in directory.glob(pattern):
        try:
            if path.is_file() and not path.is_symlink() and secret.encode() in path.read_bytes():
                hits.append(path)
        except OSError:
            continue
    return hits


@chat
async def test_kill_during_a_restore_ends_restic_with_the_bot_and_the_report_says_so(alice, bob, world):
    bot = world.bot
    backed_up = await alice.wait_for(from_bot(bot, "✅ data: snapshot", await alice.send(bot.room_id,
                                                                                      "!backup now data")),
                                     timeout=60)
    short_id = snapshot_id(backed_up.body, "data")
    # The pack holding the file's data becomes a FIFO: restic blocks reading it, like on a hung disk.
    packs = sorted((world.repo / "data").glob("*/*"), key=lambda p: p.stat().st_size)
    data_pack = packs[-1]
    assert data_pack.stat().st_size > 150_000
    data_pack.unlink()
    os.mkfifo(data_pack)
    (bot.state_dir / "restic-pw-left-by-an-old-version").write_text(RESTIC_PASSWORD)
    target = world.root / "restored"

    command_id, _, rid = await request_for(alice, bot, f"!backup restore {short_id} --to {target}")
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    writer = None
    deadline = time.monotonic() + 60
    while writer is None:   # a writer can open a FIFO without waiting once a reader waits in open()
        try:
            writer = os.open(data_pack, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            assert time.monotonic() < deadline, "restic never reached the data pack"
            await asyncio.sleep(0.05)
    try:
        [restic] = [p for p in processes_mentioning(f"--target={target}") if p.name == "restic"]

        bot.stop(signal.SIGKILL)

        assert await asyncio.to_thread(wait_gone, restic.pid, restic.start, 3), \
            "restic restore kept running after the bot was killed"
    finally:
        os.close(writer)
    assert files_holding(Path(tempfile.gettempdir()), RESTIC_PASSWORD, "restic-pw-*") == []
    assert files_holding(bot.state_dir, RESTIC_PASSWORD) == [bot.state_dir / "restic-pw-left-by-an-old-version"]

    bot.start()
    report = await result_reply(alice, command_id, bot, "was interrupted", timeout=60)

    assert (f"restic restore (pid {restic.pid}) was running and ended with the bot; the restore may be "
            "partial: run it again") in report.body, report.body
    assert files_holding(bot.state_dir, RESTIC_PASSWORD) == [], "a file holding the password is left"
    data_pack.unlink()


async def killed_during_a_pre_command(alice, bot) -> tuple[str, children.ProcStat, children.ProcStat]:
    """`!backup now waits` running its hanging pre command (`sh -c "sleep 300; true"`) when the bot is
    killed: the command's event id, the shell (ended with the bot) and its sleep (still running)."""
    command_id = await alice.send(bot.room_id, "!backup now waits")
    await alice.wait_for(from_bot(bot, "waits: pre command 1 (sh)"), timeout=30)
    deadline = time.monotonic() + 10
    while not (pair := _shell_and_its_sleep()):      # a sleep an earlier test left is not this one
        assert time.monotonic() < deadline, "the pre command never started"
        await asyncio.sleep(0.05)
    shell, sleep = pair

    bot.stop(signal.SIGKILL)

    assert await asyncio.to_thread(wait_gone, shell.pid, shell.start, 3), "sh outlived the bot"
    await asyncio.sleep(0.5)
    assert not gone(sleep.pid, sleep.start), "the death signal reaches the direct child only"
    return command_id, shell, sleep


def _shell_and_its_sleep() -> tuple[children.ProcStat, children.ProcStat] | None:
    """The running pre command's shell and the sleep of its session, once both are there."""
    sleeps = [p for p in processes_mentioning("sleep 300") if p.name == "sleep"]
    for shell in (p for p in processes_mentioning("sleep 300; true") if p.name == "sh"):
        if ours := [s for s in sleeps if s.session == shell.pid]:
            return shell, ours[0]
    return None


def leftover_line(shell: children.ProcStat, sleep: children.ProcStat) -> str:
    return (f"pre command 1 (sh) (pid {shell.pid}) was running and ended with the bot; sleep (pid {sleep.pid}), "
            "started by it, was still running and has been stopped")


@chat
async def test_what_a_killed_bot_left_running_is_ended_at_the_next_start_and_told(alice, world):
    bot = world.bot
    command_id, shell, sleep = await killed_during_a_pre_command(alice, bot)
    bot.start()
    report = await result_reply(alice, command_id, bot, "was interrupted", timeout=60)

    assert gone(sleep.pid, sleep.start), "the next start did not end the leftover"
    assert leftover_line(shell, sleep) in report.body, report.body


@chat
async def test_what_a_start_ended_is_told_even_when_that_start_could_not_tell_it(alice, world):
    """A start ends what its killed predecessor left running, but tells it only once it has read the rooms;
    stopped before that (the homeserver down, a restart by hand), the next start told the job as
    interrupted without a word of what was stopped, nor that the backup may be partial."""
    bot = world.bot
    command_id, shell, sleep = await killed_during_a_pre_command(alice, bot)
    config = bot.config_path.read_text()
    bot.config_path.write_text(re.sub(r'(?m)^homeserver = ".*"$', 'homeserver = "http://127.0.0.1:9"', config))
    try:
        bot.start()
        assert await asyncio.to_thread(wait_gone, sleep.pid, sleep.start, 30), "the start did not end the leftover"
        await asyncio.sleep(1)
        bot.stop()
    finally:
        bot.config_path.write_text(config)
    bot.start()
    report = await result_reply(alice, command_id, bot, "was interrupted", timeout=60)

    assert leftover_line(shell, sleep) in report.body, report.body


async def test_package_managers_get_the_usual_umask_while_other_children_keep_the_bots():
    """The bot runs with umask 077 (its state is private); apt and nixos-rebuild write system files
    everyone must read, so they run with 022."""
    from spbot.system.proc import run
    old = os.umask(0o077)
    try:
        private = await run(["sh", "-c", "umask"], timeout=10)
        usual = await run(["sh", "-c", "umask"], timeout=10, umask=0o022)
    finally:
        os.umask(old)
    assert private.stdout.strip() == "0077"
    assert usual.stdout.strip() == "0022"
