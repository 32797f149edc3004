"""The sync position is saved after a batch that brought the bot something, and not after a long poll
that ended empty: an idle bot then writes nothing every 30 s (issue 23's wake-ups), and a restart that
reads such a poll again changes nothing. The real Connection.sync_forever over a scripted client."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from nio import AsyncClientConfig, SyncResponse

from spbot.matrix import Connection, nothing_new

from .pipeline_kit import ROOM, homeserver_at, make_config


def sync(next_batch: str, **parts) -> SyncResponse:
    body = {"next_batch": next_batch, "rooms": {"join": {}, "invite": {}, "leave": {}},
            "to_device": {"events": []}, "device_lists": {"changed": [], "left": []},
            "device_one_time_keys_count": {}}
    for key, value in parts.items():
        if key == "join":
            body["rooms"]["join"] = value
        elif key == "to_device":
            body["to_device"]["events"] = value
        elif key == "changed":
            body["device_lists"]["changed"] = value
        else:
            body[key] = value
    return SyncResponse.from_dict(body)


MESSAGE = {ROOM: {"timeline": {"events": [{"type": "m.room.message", "event_id": "$1", "sender": "@a:localhost",
                                           "origin_server_ts": 1, "content": {"msgtype": "m.text", "body": "!ping"}}],
                               "limited": False}, "state": {"events": []}}}
DUMMY = [{"type": "m.dummy", "sender": "@a:localhost", "content": {}}]


@pytest.mark.parametrize("response, empty", [
    (sync("s1"), True),
    (sync("s1", join=MESSAGE), False),
    (sync("s1", to_device=DUMMY), False),
    (sync("s1", changed=["@a:localhost"]), False),
    (sync("s1", account_data={"events": [{"type": "m.direct", "content": {}}]}), False),
], ids=["an empty long poll", "a room event", "a to-device event", "a device list change", "account data"])
def test_what_counts_as_nothing_new(response, empty):
    assert nothing_new(response) is empty


async def test_only_a_batch_with_something_in_it_moves_the_saved_position(tmp_path):
    connection = Connection(make_config(tmp_path))
    script = [sync("s1"), sync("s2"), sync("s3", join=MESSAGE), sync("s4"), sync("s5", changed=["@a:localhost"]),
              sync("s6")]
    asked, saved, handled = [], [], []

    async def answer(**kwargs) -> SyncResponse:
        asked.append(kwargs["since"])
        return script.pop(0)

    async def nothing(*args, **kwargs):
        return None
    connection.client = SimpleNamespace(
        sync=answer, next_batch="", config=AsyncClientConfig(), loaded_sync_token=None, rooms={},
        invited_rooms={}, send_to_device_messages=nothing, should_upload_keys=False, should_query_keys=False,
        should_claim_keys=False, access_token="syt_fake_token", send=homeserver_at("s0"))

    async def handle(batch) -> None:
        handled.append(batch.next_batch)
        connection._stopping = not script

    async def save(position: str) -> None:
        saved.append(position)
    await connection.sync_forever(handle, "s0", save)
    assert handled == ["s1", "s2", "s3", "s4", "s5", "s6"]
    assert asked == ["s0", "s1", "s2", "s3", "s4", "s5"]          # the next poll goes on from each
    assert saved == ["s3", "s5"]
    assert connection.first_sync_done.is_set()
