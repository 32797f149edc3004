"""The floor for bench/roundtrip.py: a minimal nio E2EE bot that answers `!ping` with an m.notice reply,
with the same device persistence and sending path (ignore_unverified_devices) and nothing else."""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from nio import AsyncClient, AsyncClientConfig, LoginResponse, RoomMessageText


async def main(homeserver: str, user_id: str, password: str, room_id: str, store: str) -> None:
    Path(store).mkdir(parents=True, exist_ok=True)
    creds = Path(store) / "creds.json"
    client = AsyncClient(homeserver, user_id, store_path=store,
                         config=AsyncClientConfig(store_sync_tokens=True, encryption_enabled=True))
    if creds.exists():
        saved = json.loads(creds.read_text())
        client.restore_login(user_id, saved["device_id"], saved["access_token"])
    else:
        response = await client.login(password, device_name="echo")
        assert isinstance(response, LoginResponse), response
        creds.write_text(json.dumps({"device_id": response.device_id, "access_token": response.access_token}))

    async def on_message(room, event: RoomMessageText) -> None:
        if room.room_id == room_id and event.body == "!ping" and event.sender != user_id:
            await client.room_send(room_id, "m.room.message", {
                "msgtype": "m.notice", "body": "pong",
                "m.relates_to": {"m.in_reply_to": {"event_id": event.event_id}}},
                ignore_unverified_devices=True)

    client.add_event_callback(on_message, RoomMessageText)   # before the first sync: a waiting !ping counts
    await client.sync(timeout=0, full_state=True)
    await client.join(room_id)
    print("ready", flush=True)
    await client.sync_forever(timeout=30000, full_state=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
