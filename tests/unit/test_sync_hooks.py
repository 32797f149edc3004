"""What reads each sync beside nio (spbot/matrix.py's `on_sync`, e.g. the key requests
KeyResend answers) cannot hold the sync: a hook that fails is logged, the others still run, and the
response is handed on. Before, the failure escaped Connection.sync_forever and ended the bot's sync loop
(and the next start met the same batch again)."""
from __future__ import annotations

import logging
from types import SimpleNamespace

from aiohttp import ClientConnectorError, ServerDisconnectedError
from nio import SyncResponse

from spbot.key_resend import KeyResend
from spbot.matrix import Connection

from .pipeline_kit import homeserver_at, make_config

BATCH = {"next_batch": "s1", "rooms": {"join": {}, "invite": {}, "leave": {}}, "to_device": {"events": []},
         "device_lists": {"changed": [], "left": []}, "device_one_time_keys_count": {}}


async def test_a_failing_sync_hook_is_logged_and_the_sync_goes_on(tmp_path, caplog):
    connection = Connection(make_config(tmp_path))
    syncs = []

    async def sync(**kwargs) -> SyncResponse:
        syncs.append(kwargs)
        return SyncResponse.from_dict(BATCH)
    connection.client = SimpleNamespace(sync=sync, next_batch="", access_token="syt_fake_token",
                                        send=homeserver_at("s0"))
    seen = []

    def broken(response: SyncResponse) -> None:
        raise KeyError("a bug in a helper")
    connection.on_sync += [broken, seen.append]

    with caplog.at_level(logging.ERROR):
        response = await connection._sync(since="s0")
    assert response.next_batch == "s1" and seen == [response] and len(syncs) == 1
    assert "sync_hook_failed" in caplog.text and "broken" in caplog.text


async def test_a_failing_mended_channel_handler_does_not_fail_nios_sync(caplog):
    """KeyResend's m.dummy handler runs inside nio's sync: an error there would fail that sync, and the
    retried sync would bring the same to-device event and fail again."""
    def broken_lookup(user_id: str, sender_key: str):
        raise RuntimeError("a corrupted device store")
    olm = SimpleNamespace(create_outbound_group_session=lambda room_id: None, outbound_group_sessions={},
                          device_store=SimpleNamespace(device_from_sender_key=broken_lookup))
    callbacks = []
    client = SimpleNamespace(olm=olm, add_to_device_callback=lambda cb, kind: callbacks.append(cb))
    KeyResend(client)
    with caplog.at_level(logging.ERROR):
        await callbacks[0](SimpleNamespace(sender="@alice:example.org", sender_key="curve"))
    assert "room_key_resend_failed" in caplog.text and "corrupted device store" in caplog.text


async def test_a_step_failing_the_same_way_again_logs_its_traceback_once(tmp_path, caplog):
    """A full disk fails every sync step for as long as it lasts: the first failure's traceback is
    logged, then one line per retry (the log must not grow by a traceback every 30 s while the disk is
    full); a new kind of error, or the same after a success, is logged whole again."""
    connection = Connection(make_config(tmp_path))
    full = OSError(28, "No space left on device")
    async def fail(exc: Exception) -> None:
        try:
            raise exc
        except Exception as raised:          # as in the sync loop: logged while it is being handled
            await connection._failed("save position", raised, 1.0)
    with caplog.at_level(logging.WARNING):
        for exc in (full, full, full, KeyError("other")):
            await fail(exc)
        connection._failing.clear()          # as a success does
        await fail(full)
    tracebacks = [r for r in caplog.records if r.exc_info and r.exc_info[0]]
    assert len(tracebacks) == 3
    assert sum("sync_step_still_failing" in r.getMessage() for r in caplog.records) == 2


async def test_a_step_that_gets_no_answer_does_not_ask_about_the_token(tmp_path):
    """A step failing for want of any answer (the homeserver is down) is tried again without a whoami
    probe; one failing on an answer (here a refused keys query) makes the bot ask whether its token is
    still taken."""
    connection = Connection(make_config(tmp_path))
    asked = []

    async def whoami():
        asked.append("whoami")
        return SimpleNamespace(status_code=None)
    connection.client = SimpleNamespace(access_token="syt_fake_token", whoami=whoami)

    def failing(*errors):
        left = list(errors)

        async def step():
            if left:
                raise left.pop(0)
            return "done"
        return step

    down = [ServerDisconnectedError(), ClientConnectorError(SimpleNamespace(ssl=None, host="hs", port=8008),
                                                            ConnectionRefusedError())]
    assert await connection.until_done("device_lists", failing(*down)) == "done"
    assert asked == []
    refused = [ConnectionError("keys query failed: 500"), ConnectionError("keys query failed: 500")]
    assert await connection.until_done("device_lists", failing(*refused)) == "done"
    assert asked == ["whoami"]
