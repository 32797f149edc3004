"""Trust is built from the parts it uses (config, store, connection, devices, alerts, notify, send), not
from the bot: a waiting acceptance (a family of two admins) is kept in the real store, the same request
twice keeps its first deadline, and cancelling it is told apart from there being nothing to cancel."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from spbot.config import Config
from spbot.store import Store
from spbot.trust import Devices, Trust

KEY = "A" * 43


def config() -> Config:
    return Config(homeserver="http://127.0.0.1:1", user_id="@bot:localhost",
                  admins=["@a:localhost", "@b:localhost"], state_dir="/nonexistent",
                  password={"file": "/nonexistent"}, allow_any_admin_room=True, timezone="Europe/Berlin")


async def said(*args):
    return []


async def test_waiting_acceptance_lives_in_the_store_without_a_bot(tmp_path):
    store = await Store(tmp_path / "spbot.db").open()
    try:
        trust = Trust(config(), store, None, Devices(store, None), None, said, said)
        assert not hasattr(trust, "bot")
        first = await trust.start_waiting("@b:localhost", KEY, "@a:localhost", wait=3600)
        again = await trust.start_waiting("@b:localhost", KEY, "@a:localhost", wait=10)
        assert again == first and first["due"] - first["requested_at"] == pytest.approx(3600, abs=1)
        assert (await Trust(config(), store, None, None, None, said, said).waiting("@b:localhost")) == first
        assert await trust.cancel_waiting("@b:localhost") is True
        assert await trust.waiting("@b:localhost") is None
        assert await trust.cancel_waiting("@b:localhost") is False
    finally:
        await store.close()


def test_for_bot_takes_only_the_named_parts():
    outbox = SimpleNamespace(send=said)
    bot = SimpleNamespace(config=config(), store=object(), connection=object(), devices=object(),
                          alerts=object(), notify=said, outbox=outbox)
    trust = Trust.for_bot(bot)
    assert (trust.config, trust.store, trust.connection, trust.devices, trust.alerts) == (
        bot.config, bot.store, bot.connection, bot.devices, bot.alerts)
    assert trust.notify is said and trust.send is said and not hasattr(trust, "bot")
