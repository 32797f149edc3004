"""A bot killed in the middle of a restore, through the real chat path: after SIGKILL while the service's
units were stopped (the worst moment: the family's service is down), the next start puts the data back
as it was, starts the units again and tells the admins. Real restic, a real bot process, systemctl a
recording fakebin; nothing on this machine is stopped or started."""
from __future__ import annotations

import shutil
import time
import pytest

from tests.fakebin import FakeBin, Rule
from tests.test_approvals import request_for
from tests.test_backup_chat import backup_config, from_bot, new_repository, snapshot_id
from tests.test_restic_adapter import assert_same_tree, make_tree

pytestmark = [pytest.mark.matrix,
              pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed")]

ADMINS = ["@alice:localhost", "@bob:localhost", "@erin:localhost"]


async def test_a_restore_killed_while_the_service_is_stopped_is_undone_and_told(make_bot, alice, bob,
                                                                                 tmp_path_factory):
    root = tmp_path_factory.mktemp("restore-kill")
    live = root / "live" / "files"
    make_tree(live)
    repo, password_file = await new_repository(root)
    bins = FakeBin(root)
    bins.add("systemctl", [Rule(match=["stop", "**"], sleep=120), Rule(match=["**"])])
    services = f'[backup.services.files]\npaths = ["{live}"]\nunits = ["web-app"]\n'
    bot = await make_bot("restore-kill", env=bins.env(),
                         extra=backup_config(f'kind = "local"\npath = "{repo}"', password_file, bins, services))
    backed_up = await alice.send(bot.room_id, "!backup now files")
    snapshot = snapshot_id((await alice.wait_for(from_bot(bot, "✅ files: snapshot", backed_up), 60)).body, "files")
    (live / "docs" / "note.txt").write_text("changed after the snapshot")
    before = root / "before-restore"
    shutil.copytree(live, before, symlinks=True)

    command_id, _, rid = await request_for(alice, bot, f"!backup restore {snapshot} files")
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    deadline = time.monotonic() + 60
    while not any(c.argv[0] == "stop" for c in bins.calls("systemctl")):
        assert time.monotonic() < deadline, "the restore never stopped the unit"
        time.sleep(0.1)
    bot.kill()

    bot.start()
    told = await alice.wait_for(from_bot(bot, f"I was stopped in the middle of restoring files from snapshot "
                                              f"{snapshot}"), timeout=90)
    assert "nothing had been replaced yet, and started web-app.service again" in told.body, told.body
    assert "Nothing was restored: send the restore again" in told.body
    assert sorted(told.content["m.mentions"]["user_ids"]) == ADMINS           # it rings: the service was down
    assert [c.argv for c in bins.calls("systemctl")][-1] == ["start", "--", "web-app.service"]
    assert_same_tree(before, live)
    assert [p.name for p in live.parent.iterdir() if p.name.startswith(".spbot-")] == []
    again = await alice.send(bot.room_id, "!backup now files")         # backups wait no longer
    await alice.wait_for(from_bot(bot, "✅ files: snapshot", again), 60)
    told_twice = [e for e in alice.events if e.sender == bot.user_id and "I was stopped in the middle" in e.body]
    assert len(told_twice) == 1
