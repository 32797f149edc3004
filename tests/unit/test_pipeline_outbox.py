"""The outbox (spbot/outbox.py) and the messenger over it, driven through a recording connection: messages
leave in the order they were queued, wait out an unreachable homeserver without losing or reordering any,
an edit still waiting is replaced rather than queued behind, and a reply is threaded to its command."""
from __future__ import annotations

import asyncio

from aiohttp import ClientConnectionError

from spbot.render import Reply

from .pipeline_kit import OTHER_ROOM, ROOM, Parts, request, until_sent


async def test_messages_leave_in_the_order_they_were_queued(parts):
    for n in range(5):
        await parts.messenger.send(ROOM if n % 2 else OTHER_ROOM, Reply.text(f"message {n}"))
    sent = await until_sent(parts.connection.client, 5)
    assert [c["body"] for _, _, c in sent] == [f"message {n}" for n in range(5)]
    assert [room for room, _, _ in sent] == [OTHER_ROOM, ROOM, OTHER_ROOM, ROOM, OTHER_ROOM]


async def test_an_unreachable_homeserver_delays_messages_but_loses_or_reorders_none(parts):
    client = parts.connection.client
    client.failures = [ClientConnectionError("down"), ClientConnectionError("still down")]
    ids = [await parts.messenger.send(ROOM, Reply.text(f"message {n}")) for n in range(3)]
    sent = await until_sent(client, 3, timeout=10)
    assert [c["body"] for _, _, c in sent] == ["message 0", "message 1", "message 2"]
    assert [await parts.outbox.event_id(i, timeout=1) for i in ids] == ["$sent1", "$sent2", "$sent3"]
    assert await parts.outbox.pending() == 0


async def test_a_room_key_replaced_during_its_share_is_shared_again_not_taken_for_a_bug(parts, caplog):
    """nio raises KeyError (the room's id) when a device-list change drops the key it is sharing: the
    message is sent once the new key is shared, and the log does not report a crash."""
    client = parts.connection.client
    client.failures = [KeyError(ROOM), KeyError(ROOM), KeyError(ROOM)]
    message = await parts.messenger.send(ROOM, Reply.text("after three key changes"))
    sent = await until_sent(client, 1, timeout=10)
    assert [c["body"] for _, _, c in sent] == ["after three key changes"]
    assert await parts.outbox.event_id(message, timeout=1) == "$sent1"
    events = [(r.getMessage(), r.fields.get("reason", "")) for r in caplog.records if r.name == "spbot.outbox"]
    assert [name for name, _ in events] == ["send_retry"] * 3, events
    assert all("room key was replaced" in reason for _, reason in events), events


async def test_a_waiting_edit_is_replaced_not_queued_behind(parts):
    client = parts.connection.client
    client.failures = [ClientConnectionError("down")]          # holds the queue for a moment
    message = await parts.messenger.send(ROOM, Reply.text("step 1"))
    await parts.messenger.edit(message, Reply.text("step 2"))
    await parts.messenger.edit(message, Reply.text("step 3"))
    sent = await until_sent(client, 2, timeout=10)
    await asyncio.sleep(0.1)
    assert len(client.sent) == 2
    original, edit = sent[0][2], sent[1][2]
    assert original["body"] == "step 1"
    assert edit["m.new_content"]["body"] == "step 3" and edit["body"] == "* step 3"
    assert edit["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$sent1"}


async def test_an_edit_the_homeserver_may_hold_is_not_rewritten(parts):
    """An edit whose send reached the homeserver but whose answer was lost is retried under the same
    transaction id, which the homeserver answers with the event it took: a newer edit rewritten into
    that row was lost (CI: a request's last edit never showed). It goes in a row of its own."""
    client = parts.connection.client
    message = await parts.messenger.send(ROOM, Reply.text("step 1"))
    await until_sent(client, 1)
    client.answers_lost = 1
    await parts.messenger.edit(message, Reply.text("step 2"))
    await until_sent(client, 2)                              # taken; its answer lost, so it is retried
    await asyncio.sleep(0.1)                                 # ...after a backoff of 0.5 s
    await parts.messenger.edit(message, Reply.text("step 3"))
    sent = await until_sent(client, 3, timeout=10)
    assert [c.get("m.new_content", c)["body"] for _, _, c in sent] == ["step 1", "step 2", "step 3"]
    assert await parts.outbox.pending() == 0


async def test_an_edit_an_earlier_run_queued_is_not_rewritten(parts):
    """A waiting edit from before a restart may have reached the homeserver just before the stop."""
    client = parts.connection.client
    message = await parts.messenger.send(ROOM, Reply.text("step 1"))
    await until_sent(client, 1)
    client.answers_lost = 1
    await parts.messenger.edit(message, Reply.text("step 2"))
    await until_sent(client, 2)
    await parts.outbox.stop(drain=0)                      # stopped before it knew the edit was taken
    await parts.outbox.start()
    await parts.messenger.edit(message, Reply.text("step 3"))
    sent = await until_sent(client, 3, timeout=10)
    assert [c.get("m.new_content", c)["body"] for _, _, c in sent] == ["step 1", "step 2", "step 3"]


async def test_a_reply_is_threaded_and_a_reaction_points_at_its_message(parts):
    message = await parts.messenger.reply(request("!ping", event_id="$ping"), Reply.text("pong"))
    await parts.messenger.annotate(message, "✅")
    sent = await until_sent(parts.connection.client, 2)
    assert sent[0][2] == {"msgtype": "m.notice", "body": "pong", "format": "org.matrix.custom.html",
                          "formatted_body": "pong", "m.mentions": {},
                          "m.relates_to": {"m.in_reply_to": {"event_id": "$ping"}}}
    assert sent[1][1:] == ("m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$sent1",
                                                           "key": "✅"}})


async def test_notices_go_to_every_admin_room_and_the_messenger_waits_for_them(parts):
    ids = await parts.messenger.notify(Reply.text("disk almost full"))
    assert len(ids) == 2
    await parts.messenger.caught_up(timeout=5)
    assert [(room, c["body"]) for room, _, c in parts.sent] == [(ROOM, "disk almost full"),
                                                                 (OTHER_ROOM, "disk almost full")]


async def test_a_sent_secret_leaves_no_file_while_other_writes_go_on(parts, tmp_path):
    """The wipe's checkpoint can land between another coroutine's statement and its commit (SQLite then
    refuses it: "database table is locked"); seen in CI as a password left in the -wal file."""
    async def keep_writing() -> None:
        n = 0
        while True:
            n += 1
            await parts.store.put(f"busy-{n % 7}", n)
    writers = [parts.spawn(keep_writing(), f"writer {i}") for i in range(3)]
    secrets = [f"pw-{n}-Zq8vL2" for n in range(10)]
    for n, secret in enumerate(secrets):
        message = await parts.outbox.send(ROOM, Reply.text(secret).content(), secret=True)
        assert await parts.outbox.event_id(message, timeout=30) == f"$sent{n + 1}"
    await asyncio.sleep(0.5)
    for writer in writers:
        writer.cancel()
    await asyncio.gather(*writers, return_exceptions=True)
    holding = {path.name for path in tmp_path.iterdir() if path.is_file()
               for secret in secrets if secret.encode() in path.read_bytes()}
    assert holding == set()


async def test_a_notice_given_before_any_admin_room_is_known_waits_for_them(tmp_path):
    """allow_any_admin_room: the admin rooms are the rooms the bot is in, known after the first sync;
    a notice given while the bot starts (an alert, what a stop left undone) went to no room at all."""
    parts = await Parts(tmp_path, rooms=[], allow_any_admin_room=True).start()
    try:
        connection, client = parts.connection, parts.connection.client
        connection.first_sync_done.clear()
        known, client.rooms = client.rooms, {}
        assert await parts.messenger.notify(Reply.text("⚠️ I was stopped in the middle of …")) == []
        await asyncio.sleep(0.1)
        assert client.sent == []
        client.rooms = known                                      # the first sync
        connection.first_sync_done.set()
        sent = await until_sent(client, 2)
        assert sorted(room for room, _, _ in sent) == sorted(known)
        assert {c["body"] for _, _, c in sent} == {"⚠️ I was stopped in the middle of …"}
    finally:
        await parts.stop()
