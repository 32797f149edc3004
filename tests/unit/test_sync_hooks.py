"""What reads each sync response beside nio (spbot/matrix.py's `on_sync`, e.g. the key requests
KeyResend answers) cannot hold the sync: a hook that fails is logged, the others still run, and the
response is handed on. Before, the failure escaped Connection.sync_forever and ended the bot's sync loop
(and the next start met the same batch again)."""
from __future__ import annotations

import logging
from types import SimpleNamespace

from nio import SyncResponse

from spbot.matrix import Connection

from .pipeline_kit import make_config

BATCH = {"next_batch": "s1", "rooms": {"join": {}, "invite": {}, "leave": {}}, "to_device": {"events": []},
         "device_lists": {"changed": [], "left": []}, "device_one_time_keys_count": {}}


async def test_a_failing_sync_hook_is_logged_and_the_sync_goes_on(tmp_path, caplog):
    connection = Connection(make_config(tmp_path))
    syncs = []

    async def sync(**kwargs) -> SyncResponse:
        syncs.append(kwargs)
        return SyncResponse.from_dict(BATCH)
    connection.client = SimpleNamespace(sync=sync, next_batch="")
    seen = []

    def broken(response: SyncResponse) -> None:
        raise KeyError("a bug in a helper")
    connection.on_sync += [broken, seen.append]

    with caplog.at_level(logging.ERROR):
        response = await connection._sync(since="s0")
    assert response.next_batch == "s1" and seen == [response] and len(syncs) == 1
    assert "sync_hook_failed" in caplog.text and "broken" in caplog.text
