"""What a restart finishes of a resize cut short (spbot/features/server/resizing.py), in-process: the
server feature with the real hcloud client against the local fake Hetzner Cloud API, the bot's real
store; the replies are collected instead of sent. The chat tests (tests/test_cloud_chat.py) kill a
real bot mid-resize on both providers; here are the cases a chat test would take long to set up."""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import httpx
import pytest

from spbot.features.server import ServerFeature
from spbot.features.server.marks import RESIZE_KEY, remember_resize
from spbot.features.server.resizing import finish_resize
from spbot.features.server.settings import HetznerConfig
from spbot.store import Store
from tests.fakes.hetzner_api import TOKEN, FakeHetzner


class Host:
    def __init__(self, store: Store):
        self.store = store
        self.replies: list[tuple[str, str]] = []
        self.rang: list[bool] = []
        self.jobs = SimpleNamespace(told=asyncio.Event())      # the jobs a stop cut short are told
        self.jobs.told.set()

    async def send_reply(self, request, reply) -> int:
        self.replies.append((request.event_id, reply.body))
        self.rang.append(reply.ring)
        return len(self.replies)


@pytest.fixture
def fake():
    with FakeHetzner(token=TOKEN) as server:
        yield server


@pytest.fixture
async def server(fake, tmp_path):
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    store = await Store(tmp_path / "spbot.db").open()
    settings = HetznerConfig.model_validate({
        "token": {"file": str(token)}, "server": "family-server", "api_endpoint": fake.url,
        "poll_interval": 0.01, "action_timeout": "5s"})
    yield ServerFeature(Host(store), settings)
    await store.close()


async def marked(feature: ServerFeature, **changes) -> None:
    mark = dict(job_id=7, requester="@alice:example.org", room_id="!room:example.org", event_id="$resize",
                server="family-server", current="cx22", new="cx32", was_running=True, requested_at=time.time())
    await remember_resize(feature.host.store, **{**mark, **changes})


async def test_without_a_mark_nothing_is_asked_or_said(server, fake):
    await finish_resize(server)
    assert server.host.replies == [] and fake.requests == []


async def test_a_server_renamed_since_is_not_touched(server, fake):
    await marked(server, server="old-server")
    fake.server()["status"] = "off"
    await finish_resize(server)
    (event, body), = server.host.replies
    assert event == "$resize"
    assert body == ("@alice:example.org: ⚠️ I was stopped while resizing old-server from cx22 to cx32 (job #7); I now manage "
                    "family-server instead, so I did not touch either.\nLook at old-server in the Hetzner "
                    "Cloud Console; power it on there if it is off.")
    assert server.host.rang == [True]       # the old server may be off: the admin who asked is told
    assert fake.commands() == [] and fake.server()["status"] == "off"
    assert await server.host.store.get(RESIZE_KEY) is None


async def test_a_server_that_was_off_before_the_resize_is_left_off(server, fake):
    await marked(server, was_running=False)
    fake.server()["status"] = "off"
    await finish_resize(server)
    (_, body), = server.host.replies
    assert body == ("ℹ️ I was stopped while resizing family-server from cx22 to cx32 (job #7): it is still a "
                    "cx22; the type was not changed.\nIt was off before the resize; it is off now.\n"
                    "Send the command again if you still want the new type.")
    assert fake.commands() == []


async def test_a_type_change_that_failed_meanwhile_is_told_and_the_server_powered_on(server, fake):
    """The type change was under way when the bot stopped, and Hetzner ended it in error."""
    await marked(server)
    fake.server()["status"] = "off"
    fake.fail_action("change_server_type", "unavailable", "no capacity in fsn1")
    answer = httpx.post(f"{fake.url}/servers/42/actions/change_type", headers={"Authorization": f"Bearer {TOKEN}"},
                        json={"server_type": "cx32", "upgrade_disk": False})
    assert answer.status_code == 201
    await finish_resize(server)
    (_, body), = server.host.replies
    assert body == ("ℹ️ I was stopped while resizing family-server from cx22 to cx32 (job #7): it is still a "
                    "cx22; the type was not changed.\nHetzner action “change_server_type” failed while "
                    "finishing the resize: no capacity in fsn1 (unavailable).\nIt was off, so I powered it "
                    "on again: it is running.\n"
                    "Send the command again if you still want the new type.")
    assert fake.commands() == ["change_server_type", "start_server"]
    assert fake.server()["status"] == "running" and server.host.rang == [False]


async def test_the_cancel_wording(server, fake):
    await marked(server)
    await finish_resize(server, "The resize was cancelled")
    (_, body), = server.host.replies
    assert body.startswith("ℹ️ The resize was cancelled while resizing family-server from cx22 to cx32 (job #7): "
                           "it is still a cx22")
    assert "\nThe server is running.\n" in body and fake.commands() == []
