"""Out-of-band alerts through the real path: a real bot process with a disk alert fed at the adapter
boundary (the usage file of tests/test_disk_chat.py), Apprise sending to a real local SMTP server
(aiosmtpd) and to a local HTTP receiver, the real test Synapse stopped and started, the bot restarted
in between."""
from __future__ import annotations

import asyncio
import email
import json
import re
import threading
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest
from aiosmtpd.controller import Controller

from spbot.devstack import free_port

from .test_disk_chat import Usage, about, seen

if TYPE_CHECKING:
    from .conftest import TestBot

pytestmark = pytest.mark.matrix
TIMEOUT = 30
HEARTBEAT_ID = "5f2c1e0a-7d1b-4c39-9a51-0c3e8d1f6b22"


class Mailbox:
    """A real SMTP server on loopback; keeps each message's text."""

    def __init__(self):
        self.messages: list[str] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        part = message.get_body(("plain", "html"))
        self.messages.append(f"{message['Subject']}\n{part.get_content() if part else ''}")
        return "250 OK"


class Receiver:
    """A local HTTP endpoint: Apprise's json:// posts to /alerts, the heartbeat pings /ping/…"""

    def __init__(self):
        self.bodies: list[dict] = []
        self.pings: list[tuple[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/ping/"):
                    receiver.pings.append((self.path, body.decode()))
                else:
                    receiver.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def mailbox():
    box = Mailbox()
    box.controller.start()
    yield box
    box.controller.stop()


@pytest.fixture(scope="module")
def receiver():
    endpoint = Receiver()
    yield endpoint
    endpoint.server.shutdown()


@pytest.fixture(scope="module")
async def usage(tmp_path_factory) -> Usage:
    file = Usage(tmp_path_factory.mktemp("usage-oob") / "usage.json")
    for mount in ("/data", "/srv", "/home"):
        file.set(mount, 50)
    return file


@pytest.fixture(scope="module")
async def oob_bot(make_bot, usage, mailbox, receiver, tmp_path_factory) -> "TestBot":
    secrets = tmp_path_factory.mktemp("oob-secrets")
    (secrets / "email").write_text(f"mailto://127.0.0.1:{mailbox.port}?from=spbot@example.org"
                                   f"&to=alice@example.org&secure=no&smtp=127.0.0.1\n")
    (secrets / "hook").write_text(f"json://127.0.0.1:{receiver.port}/alerts\n")
    (secrets / "heartbeat").write_text(f"http://127.0.0.1:{receiver.port}/ping/{HEARTBEAT_ID}\n")
    return await make_bot("outofband", extra=f"""
[disk]
usage_source = "{usage.path}"
sample_interval = "1s"
renotify = "1h"

[outofband]
urls = [{{file = "{secrets / 'email'}"}}, {{file = "{secrets / 'hook'}"}}]
grace = "2s"

[heartbeat]
url = {{file = "{secrets / 'heartbeat'}"}}
interval = "1s"
""")


async def until(condition, timeout: float = TIMEOUT) -> None:
    for _ in range(int(timeout * 10)):
        if condition():
            return
        await asyncio.sleep(0.1)
    assert condition(), "timed out"


async def test_an_alert_that_reaches_the_room_stays_in_the_room(alice, oob_bot, usage, mailbox, receiver):
    usage.set("/srv", 97)
    await alice.wait_for(about(oob_bot, "🚨 /srv is almost full: 97% used"), TIMEOUT)
    await asyncio.sleep(4)                                   # twice the grace time
    assert mailbox.messages == [] and receiver.bodies == []


async def test_homeserver_down_the_alert_goes_out_once_and_the_room_is_told_afterwards(
        synapse, alice, oob_bot, usage, mailbox, receiver):
    synapse.stop()
    try:
        usage.set("/data", 98)
        await until(lambda: sum("/data is almost full" in m for m in mailbox.messages) == 1)
        await until(lambda: any("cannot be reached since" in m for m in mailbox.messages))
        await until(lambda: len(receiver.bodies) == 2)
        mail = next(m for m in mailbox.messages if "/data" in m)
        assert mail.startswith("spbot: 🚨 /data is almost full: 98% used")
        assert "What to do:" in mail and "react ✅" not in mail
        assert all(b["title"].startswith("spbot: 🚨") for b in receiver.bodies), receiver.bodies
        assert any("/data is almost full" in b["message"] for b in receiver.bodies)
        oob_bot.stop()                                       # a restart while still down: nothing again
        oob_bot.start()
        await asyncio.sleep(6)
        assert len(mailbox.messages) == 2 and len(receiver.bodies) == 2, mailbox.messages
        usage.set("/home", 96)                               # the restarted bot watches and tells, still down
        await until(lambda: sum("/home is almost full" in m for m in mailbox.messages) == 1)
        await until(lambda: len(receiver.bodies) == 3)
    finally:
        synapse.start()
    note = await alice.wait_for(about(oob_bot, "While the room could not be reached I sent these by"), 90)
    assert "e-mail, web hook" in note.body
    assert "🚨 /data is almost full: 98% used" in note.body and "🚨 /home is almost full: 96% used" in note.body
    assert "🔌 The homeserver could not be reached for" in note.body
    await alice.wait_for(about(oob_bot, "🚨 /data is almost full: 98% used"), TIMEOUT)   # the room's own copy
    await asyncio.sleep(3)
    assert len(seen(alice, oob_bot, "While the room could not be reached")) == 1
    assert len(mailbox.messages) == 3 and len(receiver.bodies) == 3
    assert "127.0.0.1:" + str(mailbox.port) not in oob_bot.log()       # the channel URLs stay secret


async def test_status_names_the_channels_not_their_urls(alice, oob_bot, mailbox):
    reply = await alice.command(oob_bot.room_id, "!status", oob_bot.user_id, timeout=TIMEOUT)
    assert "out of band: e-mail, web hook for critical alerts after 2s" in reply.body, reply.body
    assert str(mailbox.port) not in reply.body


async def test_the_heartbeat_pings_on_its_schedule_without_showing_its_url(alice, oob_bot, receiver):
    before = len(receiver.pings)
    await until(lambda: len(receiver.pings) >= before + 2, 10)
    assert {path for path, _ in receiver.pings} == {f"/ping/{HEARTBEAT_ID}"}
    reply = await alice.command(oob_bot.room_id, "!status", oob_bot.user_id, timeout=TIMEOUT)
    assert re.search(r"heartbeat: every 1s, last ping \d+s ago \(ok\)", reply.body), reply.body
    assert HEARTBEAT_ID not in reply.body and HEARTBEAT_ID not in oob_bot.log()
