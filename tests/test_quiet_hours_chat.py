"""[alerts] quiet_hours through a real bot process: during the quiet hours a warning is held (in SQLite,
across a restart) while a critical alert goes out at once; when they end the warning is posted, once.
The quiet hours are set to end a minute after the bot starts (the bot's time zone is UTC); usage is fed
at the adapter boundary as in tests/test_disk_chat.py."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

from .conftest import wait_answering
from .test_disk_chat import ADMINS, Usage, about, seen

if TYPE_CHECKING:
    from .conftest import TestBot

pytestmark = pytest.mark.matrix
TIMEOUT = 30
QUIET_FOR = 50.0                 # seconds of quiet hours left when the bot is configured
QUIET_END: list[float] = []


@pytest.fixture(scope="module")
async def usage(tmp_path_factory) -> Usage:
    file = Usage(tmp_path_factory.mktemp("usage-quiet") / "usage.json")
    for mount in ("/data", "/srv"):
        file.set(mount, 50)
    return file


@pytest.fixture(scope="module")
async def quiet_bot(make_bot, usage) -> "TestBot":
    now = datetime.now(timezone.utc)
    start, end = now - timedelta(minutes=5), now + timedelta(seconds=QUIET_FOR)
    QUIET_END.append(end.replace(microsecond=0).timestamp())
    return await make_bot("quiet", extra=f"""
[disk]
usage_source = "{usage.path}"
sample_interval = "1s"
renotify = "1h"

[alerts]
quiet_hours = "{start:%H:%M:%S}-{end:%H:%M:%S}"
""")


async def test_quiet_hours_hold_a_warning_across_a_restart_and_let_critical_through(alice, quiet_bot, usage):
    usage.set("/data", 87)
    usage.set("/srv", 97)
    critical = await alice.wait_for(about(quiet_bot, "🚨 /srv is almost full: 97% used"), TIMEOUT)
    assert critical.content["msgtype"] == "m.text" and set(critical.content["m.mentions"]["user_ids"]) == ADMINS
    for _ in range(100):
        if "disk:/data:usage" in quiet_bot.log():
            break
        await asyncio.sleep(0.1)
    assert "alert_held" in quiet_bot.log() and "disk:/data:usage" in quiet_bot.log()
    assert seen(alice, quiet_bot, "/data is filling up") == []

    quiet_bot.stop()                                  # held in SQLite, not in memory
    quiet_bot.start()
    await wait_answering(alice, quiet_bot)
    assert time.time() < QUIET_END[0], "the machine was too slow: the quiet hours ended before the restart"
    assert seen(alice, quiet_bot, "/data is filling up") == []

    warning = await alice.wait_for(about(quiet_bot, "⚠️ /data is filling up: 87% used"), QUIET_FOR + TIMEOUT)
    assert time.time() >= QUIET_END[0] - 1
    assert warning.content["msgtype"] == "m.text" and set(warning.content["m.mentions"]["user_ids"]) == ADMINS
    await asyncio.sleep(4)
    assert len(seen(alice, quiet_bot, "/data is filling up")) == 1
    assert len(seen(alice, quiet_bot, "/srv is almost full")) == 1
