"""`spbot console`: talk to the bot from a terminal, as an admin of the dev stack, over E2EE.

Type commands at the prompt; the bot's replies (and edits of its progress messages) are printed as
they arrive. With stdin from a pipe it sends each line, waits for the answers, and exits."""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from .chatclient import ChatClient, Seen

WAIT_AFTER_EOF = 30.0


def _show(seen: Seen, me: str) -> None:
    if seen.sender == me or not seen.type.startswith("m.room.message"):
        return
    if seen.type == "m.room.encrypted" and not seen.decrypted:
        print(f"[{seen.sender}] (a message this device cannot decrypt)", flush=True)
        return
    content = seen.content
    if seen.relates.get("rel_type") == "m.replace":
        content = content.get("m.new_content", content)
        prefix = "✎ "
    else:
        prefix = ""
    body = content.get("body", "")
    print(f"[{seen.sender}] {prefix}{body}", flush=True)


async def run_console(dev_json: Path | None, user: str | None) -> int:
    from .devup import STATE
    dev_json = dev_json or STATE / "dev.json"
    if not dev_json.exists():
        print(f"no {dev_json}: start the dev stack first with deploy/synapse-dev/up", file=sys.stderr)
        return 2
    dev = json.loads(dev_json.read_text())
    admins = [u for u in dev["users"] if u["admin"] and (user is None or u["user_id"] == user)]
    if not admins:
        print(f"{user} is not an admin in {dev_json}", file=sys.stderr)
        return 2
    me = admins[0]
    client = ChatClient(dev["homeserver"], me["user_id"], me["password"],
                        dev_json.parent / "console" / me["user_id"])
    await client.start()
    client.on_event = lambda seen: _show(seen, me["user_id"])
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"Logged in as {me['user_id']} (device {client.device_id}) in {dev['room_id']}.\n"
              f"Type !help, or Ctrl-D to leave.", flush=True)
    sent: list[str] = []
    try:
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            line = line.strip()
            if line:
                sent.append(await client.send(dev["room_id"], line))
        await _wait_for_answers(client, sent, dev["bot_user_id"])
    finally:
        await client.stop()
    return 0


async def _wait_for_answers(client: ChatClient, sent: list[str], bot: str) -> None:
    for event_id in sent:
        try:
            await client.wait_for(lambda e: e.sender == bot and e.reply_to == event_id, WAIT_AFTER_EOF)
        except asyncio.TimeoutError:
            print(f"(no answer from the bot to {event_id} within {WAIT_AFTER_EOF:.0f}s)", flush=True)
    await asyncio.sleep(0.5)
