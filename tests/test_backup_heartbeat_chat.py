"""The heartbeat around each backup run (issue 15): a real bot process backs up with the real restic into a
local repository and pings a local HTTP receiver (tests/test_outofband_chat.py's) as healthchecks.io reads
it: `/start` before, the plain URL after a success, `/fail` with the reason after a failure."""
from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest

from tests.fakebin import FakeBin, Rule
from tests.test_backup_chat import backup_config, from_bot, new_repository
from tests.test_outofband_chat import Receiver, until

if TYPE_CHECKING:
    from .conftest import TestBot

pytestmark = [pytest.mark.matrix,
              pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed")]
CHECK = "0b7d2c1e-9f7a-4d0c-8d52-5a1e6c3f2b90"
TIMEOUT = 60


@pytest.fixture(scope="module")
def receiver():
    endpoint = Receiver()
    yield endpoint
    endpoint.server.shutdown()


@pytest.fixture(scope="module")
async def beat_bot(make_bot, receiver, tmp_path_factory) -> "TestBot":
    root = tmp_path_factory.mktemp("backup-heartbeat")
    (root / "live" / "files").mkdir(parents=True)
    (root / "live" / "files" / "note").write_text("keep me\n")
    repo, password_file = await new_repository(root)
    bins = FakeBin(root)
    bins.add("systemctl", [Rule(match=["**"])])
    url = root / "heartbeat-url"
    url.write_text(f"http://127.0.0.1:{receiver.port}/ping/{CHECK}\n")
    services = f"""
[backup.services.files]
paths = ["{root}/live/files"]
[backup.services.broken]
paths = ["{root}/live/files"]
pre = [["false"]]
"""
    extra = backup_config(f'kind = "local"\npath = "{repo}"', password_file, bins, services) + f"""
[heartbeat]
url = {{file = "{url}"}}
interval = "1h"
"""
    return await make_bot("backup-heartbeat", extra=extra, env=bins.env())


def around_backups(receiver: Receiver) -> list[tuple[str, str]]:
    """The pings about backups (the scheduled "alive" pings have an empty body)."""
    return [(path.removeprefix(f"/ping/{CHECK}"), body) for path, body in receiver.pings if "backup" in body]


async def test_a_backup_pings_start_then_success(alice, beat_bot, receiver):
    command_id = await alice.send(beat_bot.room_id, "!backup now files")
    await alice.wait_for(from_bot(beat_bot, "✅ files: snapshot", command_id), timeout=TIMEOUT)
    await until(lambda: len(around_backups(receiver)) == 2)
    assert around_backups(receiver) == [("/start", "manual backup started"), ("", "manual backup done")]


async def test_a_failed_backup_pings_fail_with_the_reason(alice, beat_bot, receiver):
    before = len(around_backups(receiver))
    command_id = await alice.send(beat_bot.room_id, "!backup now broken")
    await alice.wait_for(from_bot(beat_bot, "backup failed", command_id), timeout=TIMEOUT)
    await until(lambda: len(around_backups(receiver)) == before + 2)
    start, end = around_backups(receiver)[before:]
    assert start == ("/start", "manual backup started")
    assert end[0] == "/fail" and end[1].startswith("manual backup failed: broken: "), end
    assert "pre" in end[1], end
    assert CHECK not in beat_bot.log()                          # the ping URL is a secret
