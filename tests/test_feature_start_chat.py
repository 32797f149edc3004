"""A feature that cannot start leaves the rest of the bot running (the bot as a real process on the real
Synapse): its [heartbeat] URL file is gone, so the admins get a warning that says what failed and what to
do, the bot still answers, and !status names the feature; once the file is back and the bot restarted,
the warning is resolved. Before, such a failure stopped the whole bot at start: the family lost its
only console over one missing file."""
from __future__ import annotations

import pytest

from .conftest import wait_answering

pytestmark = pytest.mark.matrix
TIMEOUT = 30


async def test_a_feature_that_cannot_start_is_told_and_the_rest_runs(alice, make_bot, tmp_path_factory):
    url_file = tmp_path_factory.mktemp("heartbeat") / "heartbeat-url"
    bot = await make_bot("feature-start", extra=f'[heartbeat]\nurl = {{file = "{url_file}"}}\ninterval = "1h"\n')

    warning = await alice.wait_for(lambda e: e.sender == bot.user_id and "[heartbeat] did not start" in e.body,
                                   TIMEOUT)
    assert f"secret file {url_file}: cannot be read (FileNotFoundError)" in warning.body, warning.body
    assert "everything else runs" in warning.body and "restart me" in warning.body, warning.body
    assert warning.body.startswith(alice.user_id) and warning.content["m.mentions"]["user_ids"], warning.content
    status = await alice.command(bot.room_id, "!status", bot.user_id, timeout=TIMEOUT)
    assert "heartbeat: not running, it did not start: secret file" in status.body, status.body
    assert "Traceback" not in bot.log().split("feature_not_started", 1)[0]      # before it: a clean start

    url_file.write_text("http://127.0.0.1:9/ping/0b7d2c1e\n")
    bot.stop()
    bot.start()
    await wait_answering(alice, bot)
    await alice.wait_for(lambda e: e.sender == bot.user_id and "resolved: [heartbeat] started again" in e.body,
                         TIMEOUT)
    status = await alice.command(bot.room_id, "!status", bot.user_id, timeout=TIMEOUT)
    assert "did not start" not in status.body, status.body
    assert sum("[heartbeat] did not start" in e.body for e in alice.events if e.sender == bot.user_id) == 1
