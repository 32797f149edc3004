"""The server and DNS features in-process: their settings, their scheduled drift check, what they
say when they are not set up, and that the Hetzner implementation offers every operation of the
provider interface a second provider has to implement too."""
from __future__ import annotations

import inspect

import pytest

from spbot.config import Config
from spbot.context import UserError
from spbot.feature import Features
from spbot.features import all_features
from spbot.features.dns import DnsFeature
from spbot.features.server import ServerFeature
from spbot.features.server.hetzner import HetznerServer
from spbot.features.server.provider import ServerProvider
from spbot.scheduler import make_scheduler

DNS = {"provider": "desec", "domain": "example.org", "ipv4": "203.0.113.10",
       "token": {"env": "UNUSED"}}


class Host:
    def __init__(self, config: Config):
        self.config = config
        self.scheduler = make_scheduler(config.timezone)
        self.alerts = None
        self.spawned: list[str] = []

    def spawn(self, coro, name: str):
        coro.close()
        self.spawned.append(name)


def config(**sections) -> Config:
    return Config(homeserver="https://chat.example.org", user_id="@bot:example.org",
                  admins=["@a:example.org"], state_dir="/nonexistent",
                  password={"file": "/nonexistent"}, allow_any_admin_room=True,
                  timezone="Europe/Berlin", **sections)


async def started(cfg: Config) -> tuple[Host, Features]:
    host = Host(cfg)
    features = Features([ServerFeature, DnsFeature])
    await features.start(host)
    return host, features


def test_both_features_are_in_the_feature_list():
    assert {ServerFeature, DnsFeature} <= set(all_features())
    assert (ServerFeature.name, DnsFeature.name) == ("hetzner", "dns")


async def test_without_their_sections_they_say_how_to_set_them_up_and_schedule_nothing():
    host, features = await started(config())
    assert host.scheduler.get_jobs() == [] and host.spawned == []
    with pytest.raises(UserError, match="Hetzner Cloud is not set up for this bot") as server:
        features.get(ServerFeature).provider()
    assert "server = \"<server name>\"" in server.value.todo
    with pytest.raises(UserError, match="DNS is not set up for this bot"):
        features.get(DnsFeature).require_settings()
    assert await features.get(ServerFeature).grow_offer("/mnt/data") is None


async def test_dns_drift_check_is_scheduled_soon_after_start_and_manages_the_homeserver_name():
    host, features = await started(config(dns={**DNS, "check_interval": "6h"}))
    (job,) = host.scheduler.get_jobs()
    assert (job.id, job.name, job.trigger.interval.total_seconds()) == (
        "dns-drift", "DNS drift check", 21600)
    (work,) = features.get(DnsFeature).scheduled()
    assert work.first_in == 60.0
    assert features.get(DnsFeature).require_settings().subdomains[-1] == "chat"


async def test_a_zero_interval_turns_the_drift_check_off():
    host, _ = await started(config(dns={**DNS, "check_interval": 0}))
    assert host.scheduler.get_jobs() == []


async def test_a_configured_server_reports_a_reboot_a_volume_growth_and_a_resize_after_start():
    token = {"env": "UNUSED"}
    host, _ = await started(config(hetzner={"token": token, "server": "family-server"}))
    assert host.spawned == ["reboot report", "volume growth report", "resize report"]


def test_the_hetzner_server_implements_every_operation_of_the_provider_interface():
    wanted = {name for name, _ in inspect.getmembers(ServerProvider, inspect.isfunction)
              if not name.startswith("_")}
    assert {"server_facts", "metrics", "start_reboot", "wait_action", "action", "create_snapshot",
            "plan_resize", "resize", "list_volumes", "resize_volume", "volume_for_device",
            "volume_id_for_device", "volume_price", "running_actions", "power_on"} <= wanted
    for name in wanted:
        ours = getattr(HetznerServer, name)
        assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(
            getattr(ServerProvider, name)), name
        assert list(inspect.signature(ours).parameters) == list(
            inspect.signature(getattr(ServerProvider, name)).parameters), name
