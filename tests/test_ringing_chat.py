"""Messages that need a person ring on the admins' phones; routine ones stay quiet (issue 15). Proven with
the homeserver's own push evaluation, not by reading our code:

(a) what the real test Synapse pushes: the mentioned admin's GET /_matrix/client/v3/notifications lists
    the event. The admin room is encrypted, so the server sees only m.room.encrypted (its
    `.m.rule.encrypted` underride notifies every member, no highlight);
(b) what the admin's client decides on the decrypted event: the admin's own push rules, fetched from the
    server, evaluated as the spec says (tests/pushrules.py) on the event their E2EE client decrypted;
(c) the evaluator itself checked against Synapse: the same contents sent in an unencrypted room, where
    Synapse evaluates the readable event, give the same notify/highlight for every member."""
from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

import httpx
import pytest

from spbot.devstack import PlainSession

from .conftest import PASSWORD, wait_answering
from .pushrules import Room, Verdict, evaluate
from .test_approvals import final_edit, request_for, result_reply, token
from .test_disk_chat import Usage, about

if TYPE_CHECKING:
    from spbot.chatclient import ChatClient, Seen
    from .conftest import TestBot

pytestmark = pytest.mark.matrix
TIMEOUT = 30
ADMINS = {"@alice:localhost", "@bob:localhost", "@erin:localhost"}
SENT: list[tuple[str, "Seen"]] = []           # (what, the event as alice decrypted it), for the cross-check


class Homeserver:
    """The client API as one user sees it (their own access token)."""

    def __init__(self, url: str):
        self.url = url

    def _get(self, token: str, path: str, **params) -> dict:
        response = httpx.get(self.url + path, params=params, timeout=30,
                             headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        return response.json()

    def notifications(self, token: str, room_id: str) -> dict[str, list]:
        """event id → push actions, for every notification of this user in this room."""
        found, since = {}, None
        for _ in range(20):
            page = self._get(token, "/_matrix/client/v3/notifications", limit=100,
                             **({"from": since} if since else {}))
            for entry in page["notifications"]:
                if entry["room_id"] == room_id:
                    found[entry["event"]["event_id"]] = entry["actions"]
            since = page.get("next_token")
            if not since or not page["notifications"]:
                return found
        return found

    def rules(self, token: str) -> dict:
        return self._get(token, "/_matrix/client/v3/pushrules/")["global"]

    def room(self, token: str, room_id: str, user_id: str) -> Room:
        members = self._get(token, f"/_matrix/client/v3/rooms/{room_id}/joined_members")["joined"]
        levels = self._get(token, f"/_matrix/client/v3/rooms/{room_id}/state/m.room.power_levels")
        name = (members.get(user_id) or {}).get("display_name")
        return Room(room_id, len(members), name, levels)

    async def listed(self, token: str, room_id: str, event_id: str, timeout: float = TIMEOUT) -> list:
        for _ in range(int(timeout * 5)):
            actions = self.notifications(token, room_id).get(event_id)
            if actions is not None:
                return actions
            await asyncio.sleep(0.2)
        raise AssertionError(f"{event_id} never showed up in the notifications")


@pytest.fixture(scope="module")
def homeserver(synapse) -> Homeserver:
    return Homeserver(synapse.url)


@pytest.fixture(scope="module")
def clients(alice, bob, carol, erin) -> dict[str, "ChatClient"]:
    return {c.user_id: c for c in (alice, bob, carol, erin)}


@pytest.fixture(scope="module")
async def usage(tmp_path_factory) -> Usage:
    file = Usage(tmp_path_factory.mktemp("usage-ring") / "usage.json")
    file.set("/data", 50)
    return file


@pytest.fixture(scope="module")
async def ring_bot(make_bot, usage) -> "TestBot":
    return await make_bot("ringing", extra=f"""
[disk]
usage_source = "{usage.path}"
sample_interval = "1s"
renotify = "1h"
""")


async def decrypted_by(client: "ChatClient", event_id: str) -> "Seen":
    """The event as this admin's own E2EE client decrypted it."""
    seen = await client.wait_for(lambda e: e.event_id == event_id, TIMEOUT)
    assert seen.decrypted and seen.type == "m.room.message", seen
    return seen


def as_event(seen: "Seen", room_id: str) -> dict:
    return {"type": seen.type, "content": seen.content, "sender": seen.sender, "room_id": room_id,
            "event_id": seen.event_id}


async def client_verdict(homeserver: Homeserver, client: "ChatClient", room_id: str, event_id: str) -> Verdict:
    token = client.client.access_token
    seen = await decrypted_by(client, event_id)
    return evaluate(homeserver.rules(token), as_event(seen, room_id),
                    homeserver.room(token, room_id, client.user_id))


async def assert_rings(homeserver: Homeserver, clients: dict, bot: "TestBot", event: "Seen", who: set[str],
                       what: str) -> None:
    """Each admin in `who` is mentioned, the server pushes the event to them, and their client, evaluating
    their own rules on the decrypted event, notifies and highlights it with a sound."""
    assert event.content["msgtype"] == "m.text", what
    assert set(event.content["m.mentions"]["user_ids"]) == who, what
    assert all(f'href="https://matrix.to/#/{user}"' in event.content["formatted_body"] for user in who), what
    for user in who:
        client = clients[user]
        actions = await homeserver.listed(client.client.access_token, bot.room_id, event.event_id)
        assert "notify" in actions, (what, user, actions)
        verdict = await client_verdict(homeserver, client, bot.room_id, event.event_id)
        assert (verdict.notify, verdict.highlight) == (True, True), (what, user, verdict)
        assert verdict.rule_id == ".m.rule.is_user_mention" and verdict.sound == "default", (what, verdict)
    for user in set(clients) - who:             # the others: an m.text in a group room, never highlighted
        verdict = await client_verdict(homeserver, clients[user], bot.room_id, event.event_id)
        assert not verdict.highlight, (what, user, verdict)
    SENT.append((what, event))


async def assert_quiet(homeserver: Homeserver, clients: dict, bot: "TestBot", event: "Seen", what: str) -> None:
    """Nobody's client notifies for it."""
    for user, client in clients.items():
        verdict = await client_verdict(homeserver, client, bot.room_id, event.event_id)
        assert not verdict.notify, (what, user, verdict)
    SENT.append((what, event))


async def test_an_identity_warning_rings_its_admin_and_a_routine_reply_stays_quiet(
        homeserver, clients, alice, ring_bot):
    # alice's first command to this bot (wait_answering's !ping) came from a device it had not seen
    warning = await alice.wait_for(about(ring_bot, "new device"), TIMEOUT)
    await assert_rings(homeserver, clients, ring_bot, warning, {alice.user_id}, "identity warning")
    pong = await alice.command(ring_bot.room_id, "!ping", ring_bot.user_id, timeout=TIMEOUT)
    assert pong.content["msgtype"] == "m.notice" and pong.content["m.mentions"] == {}
    await assert_quiet(homeserver, clients, ring_bot, pong, "routine reply")
    # what the server sees of the encrypted room: every message pushed, none highlighted
    actions = await homeserver.listed(alice.client.access_token, ring_bot.room_id, pong.event_id)
    assert not Verdict.from_actions(None, actions).highlight


async def test_an_alert_and_its_recovery_ring_every_admin(homeserver, clients, alice, ring_bot, usage):
    usage.set("/data", 87)
    alert = await alice.wait_for(about(ring_bot, "/data is filling up"), TIMEOUT)
    await assert_rings(homeserver, clients, ring_bot, alert, ADMINS, "alert")
    usage.set("/data", 70)
    recovery = await alice.wait_for(about(ring_bot, "resolved: /data is back to 70% full"), TIMEOUT)
    await assert_rings(homeserver, clients, ring_bot, recovery, ADMINS, "recovery")


async def test_an_approval_request_rings_the_approvers_and_its_edits_and_progress_do_not(
        homeserver, clients, alice, bob, ring_bot):
    mark = token()
    command_id, request, rid = await request_for(alice, ring_bot, f"!danger-slow 60 {mark}")
    await assert_rings(homeserver, clients, ring_bot, request, {"@bob:localhost", "@erin:localhost"},
                       "approval request")
    await bob.command(ring_bot.room_id, f"!approve {rid}", ring_bot.user_id)
    approved = await final_edit(alice, request, ring_bot, "approved by")
    assert approved.content["m.mentions"] == {}, "an edit mentions nobody anew"
    await assert_quiet(homeserver, clients, ring_bot, approved, "edit of the approval request")
    progress = await alice.wait_for(lambda e: e.sender == ring_bot.user_id and e.reply_to == command_id
                                    and "— job #" in e.body, TIMEOUT)
    await assert_quiet(homeserver, clients, ring_bot, progress, "job progress message")
    edit = await alice.wait_for(lambda e: e.relates.get("rel_type") == "m.replace"
                                and e.relates.get("event_id") == progress.event_id, TIMEOUT)
    await assert_quiet(homeserver, clients, ring_bot, edit, "progress edit")

    # "the job needs you": the bot is killed during the job; at its next start it tells the requester
    (ring_bot.state_dir / f"started-{mark}").unlink()
    ring_bot.stop(signal.SIGKILL)
    ring_bot.start()
    report = await result_reply(alice, command_id, ring_bot, "was interrupted", timeout=60)
    await assert_rings(homeserver, clients, ring_bot, report, {alice.user_id}, "interrupted job")
    await wait_answering(alice, ring_bot)

    # the server never pushed the edits (nio sends m.relates_to in the clear: `.m.rule.suppress_edits`)
    for user in ("@bob:localhost", "@erin:localhost"):
        pushed = homeserver.notifications(clients[user].client.access_token, ring_bot.room_id)
        assert report.event_id in pushed and request.event_id in pushed
        assert approved.event_id not in pushed and edit.event_id not in pushed


async def test_the_evaluator_agrees_with_synapse_on_the_same_contents_in_an_unencrypted_room(
        synapse, people, homeserver, clients):
    """Dave sends what the bot sent (as decrypted), in a plain room with the same people; Synapse
    evaluates each readable event for each member, and so does tests/pushrules.py."""
    kinds = {what for what, _ in SENT}
    assert {"identity warning", "routine reply", "alert", "recovery", "approval request", "interrupted job",
            "edit of the approval request", "progress edit"} <= kinds, kinds
    dave = PlainSession.login(synapse.url, people["dave"].user_id, PASSWORD)
    members = [u for u in clients]
    room = dave.http.post("/_matrix/client/v3/createRoom", json={
        "name": "push rule cross-check", "preset": "private_chat", "invite": members}).json()["room_id"]
    for user in members:
        session = PlainSession.login(synapse.url, user, PASSWORD)
        session.join(room)
        session.logout()
    copies: dict[str, str] = {}                 # the bot's event id → the plain room's copy
    sent: list[tuple[str, dict, str]] = []
    for n, (what, event) in enumerate(SENT):
        content = dict(event.content)
        relates = content.get("m.relates_to") or {}
        if relates.get("rel_type") == "m.replace":
            content["m.relates_to"] = {**relates, "event_id": copies.get(relates["event_id"], relates["event_id"])}
        elif "m.in_reply_to" in relates:
            content.pop("m.relates_to")
        response = dave.http.put(f"/_matrix/client/v3/rooms/{room}/send/m.room.message/ring{n}", json=content)
        response.raise_for_status()
        copies[event.event_id] = response.json()["event_id"]
        sent.append((what, content, copies[event.event_id]))
    marker = dave.http.put(f"/_matrix/client/v3/rooms/{room}/send/m.room.message/marker", json={
        "msgtype": "m.text", "body": "done", "m.mentions": {"user_ids": members}}).json()["event_id"]
    try:
        for user, client in clients.items():
            token = client.client.access_token
            await homeserver.listed(token, room, marker)            # everything before it is evaluated
            pushed = homeserver.notifications(token, room)
            rules, view = homeserver.rules(token), homeserver.room(token, room, user)
            for what, content, event_id in sent:
                ours = evaluate(rules, {"type": "m.room.message", "content": content, "room_id": room,
                                        "sender": people["dave"].user_id, "event_id": event_id}, view)
                theirs = Verdict.from_actions(None, pushed[event_id]) if event_id in pushed else \
                    Verdict(None, False, False, None)
                assert (ours.notify, ours.highlight) == (theirs.notify, theirs.highlight), (what, user, ours, theirs)
                if user in (content.get("m.mentions") or {}).get("user_ids", []) and \
                        content["msgtype"] == "m.text" and "m.replace" not in str(content.get("m.relates_to")):
                    assert theirs.highlight, (what, user)
    finally:
        dave.logout()
