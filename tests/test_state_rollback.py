"""A state directory put back as it was earlier (a server snapshot restored after a bad upgrade, a backup
of /var/lib/spbot): the bot's state forgot the commands it handled since, and its older sync position
brings them again. Before, those still fresh enough (within max_command_age) ran a second time; now a
command the bot answered (its reply is in the room) is taken as handled, whatever its state says."""
from __future__ import annotations

import asyncio
import shutil

import pytest

from .conftest import wait_answering
from .test_replay_and_edits import token

pytestmark = pytest.mark.matrix

STATE = ("spbot.db", "spbot.db-wal", "spbot.db-shm", "credentials.json", "crypto.key", "crypto")


def copy_state(source, target) -> None:
    """The bot's own state (not the test plugin's marks.txt: it counts what ran)."""
    target.mkdir(exist_ok=True)
    for name in STATE:
        gone = target / name
        if gone.is_dir():
            shutil.rmtree(gone)
        else:
            gone.unlink(missing_ok=True)
        if (source / name).is_dir():
            shutil.copytree(source / name, gone)
        elif (source / name).exists():
            shutil.copy2(source / name, gone)


async def test_commands_answered_after_a_snapshot_do_not_run_again_when_it_is_restored(make_bot, alice,
                                                                                      tmp_path):
    bot = await make_bot("rolled-back")
    bot.stop()             # long enough a window that the commands below are still fresh after the restore
    bot.config_path.write_text(bot.config_path.read_text().replace('max_command_age = "8s"',
                                                                   'max_command_age = "5m"'))
    bot.start()
    await wait_answering(alice, bot)
    bot.stop()
    copy_state(bot.state_dir, tmp_path / "snapshot")

    bot.start()
    await wait_answering(alice, bot)
    mark = token()
    answer = await alice.command(bot.room_id, f"!mark {mark}", bot.user_id)
    assert answer.body == f"marked {mark}"
    bot.stop()
    copy_state(tmp_path / "snapshot", bot.state_dir)

    bot.start()
    await wait_answering(alice, bot)
    await asyncio.sleep(1)
    assert bot.marks().count(mark) == 1, "a command answered before the restore ran again"
    fresh = await alice.command(bot.room_id, f"!mark {mark}", bot.user_id)
    assert fresh.body == f"marked {mark}" and bot.marks().count(mark) == 2
