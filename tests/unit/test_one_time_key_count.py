"""A sync that finds none of the bot's one-time keys left on the homeserver makes nio upload new ones
(spbot/nio_fixes.py: nio skipped a count of 0 and kept the last count it saw)."""
from __future__ import annotations

from nio import AsyncClient, AsyncClientConfig, SyncResponse

import spbot.matrix  # noqa: F401  (applies spbot/nio_fixes.py, as the bot does)


def counted(count: int | None) -> SyncResponse:
    return SyncResponse.from_dict({
        "next_batch": "s1", "rooms": {"join": {}, "invite": {}, "leave": {}}, "to_device": {"events": []},
        "device_lists": {"changed": [], "left": []},
        "device_one_time_keys_count": {} if count is None else {"signed_curve25519": count}})


async def client_with_every_key_uploaded(tmp_path) -> AsyncClient:
    client = AsyncClient("http://127.0.0.1:9", "@bot:localhost", device_id="BOTDEVICE", store_path=str(tmp_path),
                         config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False))
    client.user_id, client.access_token = "@bot:localhost", "syt_fake_token"
    client.load_store()
    client.olm.account.shared = True
    client.olm.uploaded_key_count = client.olm.account.max_one_time_keys
    return client


async def test_none_left_is_refilled(tmp_path):
    client = await client_with_every_key_uploaded(tmp_path)
    assert not client.should_upload_keys
    await client.receive_response(counted(0))
    assert client.should_upload_keys
    await client.close()


async def test_a_sync_that_does_not_count_them_changes_nothing(tmp_path):
    client = await client_with_every_key_uploaded(tmp_path)
    await client.receive_response(counted(None))
    assert not client.should_upload_keys
    await client.close()
