"""Attack-run scenarios aimed at the bot's device rather than its room (bench/attack.py runs them): what
anyone on the homeserver may send it or take from it (tests/hostile.py), with the admins' commands
coming in meanwhile and a device new to the bot writing afterwards."""
from __future__ import annotations

import asyncio
import base64
import os
import uuid

from spbot.chatclient import ChatClient
from spbot.devstack import PlainSession
from tests.hostile import (OLM, claim_every_one_time_key, device_keys, olm_room_key_with_a_bad_session_key,
                           send_to_device)


def unreadable(kind: int, session: PlainSession, run, device: tuple[str, str, str]) -> dict:
    """One of four to-device messages the bot cannot read: no base64, noise as a pre-key or a normal
    Olm message, a real Olm message whose room key is not one (it uses up a one-time key)."""
    device_id, curve, ed25519 = device
    if kind == 3:
        return olm_room_key_with_a_bad_session_key(session, run.bot_user, device_id, curve, ed25519,
                                                   run.clients["mallory"].user_id)
    body = "!!not base64" if kind == 0 else base64.b64encode(os.urandom(120)).decode().rstrip("=")
    return {"algorithm": OLM, "sender_key": curve, "ciphertext": {curve: {"type": kind % 2, "body": body}}}


async def hostile_to_device(run, count: int = 40) -> None:
    """mallory (a member, not an admin) sends the bot's device `count` messages it cannot read while
    alice's commands come in, then claims every one-time key it has; then a new device of bob's (which
    needs one of those keys to write to the bot) sends commands. Each command is answered, none twice."""
    alice, tokens = run.clients["alice"], {}
    session = PlainSession.login(run.synapse.url, run.clients["mallory"].user_id, run.password)
    phone = None
    try:
        device = device_keys(session, run.bot_user)
        for n in range(count):
            await asyncio.to_thread(send_to_device, session, run.bot_user, device[0],
                                    unreadable(n % 4, session, run, device))
            if n % 10 == 9:
                token = uuid.uuid4().hex[:10]
                tokens[await alice.send(run.room, f"!mark {token}")] = token
        claimed = await asyncio.to_thread(claim_every_one_time_key, session, run.bot_user, device[0])
        await alice.command(run.room, "!ping", run.bot_user, timeout=60)      # a sync of the bot's since
        phone = await ChatClient(run.synapse.url, run.clients["bob"].user_id, run.password,
                                 run.work / f"client-bob-phone-{uuid.uuid4().hex[:6]}").start()
        for _ in range(3):
            token = uuid.uuid4().hex[:10]
            tokens[await phone.send(run.room, f"!mark {token}")] = token
        run.tally("to-device noise, keys claimed", tokens, await run.answered(alice, list(tokens), 60), 0)
        run.figures.notes[-1] += f"; {count} unreadable messages, {claimed} one-time keys claimed"
    finally:
        if phone is not None:
            await phone.stop()
        session.logout()
