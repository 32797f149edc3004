"""The server feature's two providers in-process: [cloud] picks the section, what the feature says
when the choice is unclear or the section is missing, both implement the whole provider interface,
and a bot that does not use DigitalOcean never imports pydo."""
from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from spbot.context import UserError
from spbot.features.server import ServerFeature
from spbot.features.server.digitalocean import DigitalOceanServer
from spbot.features.server.hetzner import HetznerServer
from spbot.features.server.provider import ServerProvider
from spbot.features.server.settings import DigitalOceanConfig, HetznerConfig

from .test_cloud_features import config, started

TOKEN = {"env": "UNUSED"}
HETZNER = {"token": TOKEN, "server": "family-server"}
DIGITALOCEAN = {"token": TOKEN, "droplet": "family-server"}


@pytest.mark.parametrize("sections, wanted", [
    ({"hetzner": HETZNER}, HetznerConfig),
    ({"digitalocean": DIGITALOCEAN}, DigitalOceanConfig),
    ({"cloud": {"provider": "digitalocean"}, "hetzner": HETZNER,
      "digitalocean": DIGITALOCEAN}, DigitalOceanConfig),
    ({"cloud": {"provider": "hetzner"}, "hetzner": HETZNER, "digitalocean": DIGITALOCEAN},
     HetznerConfig),
])
async def test_the_cloud_section_or_the_one_set_up_section_picks_the_provider(sections, wanted):
    host, features = await started(config(**sections))
    settings = features.get(ServerFeature).require_settings()
    assert type(settings) is wanted
    assert host.spawned == ["reboot report", "volume growth report", "resize report"]


async def test_two_set_up_providers_without_a_choice_are_refused_in_words():
    _, features = await started(config(hetzner=HETZNER, digitalocean=DIGITALOCEAN))
    with pytest.raises(UserError, match=r"Both \[hetzner\] and \[digitalocean\] are set up") as e:
        features.get(ServerFeature).provider()
    assert 'provider = "digitalocean"' in e.value.todo


async def test_a_chosen_provider_without_its_section_says_how_to_set_it_up():
    _, features = await started(config(cloud={"provider": "digitalocean"}, hetzner=HETZNER))
    with pytest.raises(UserError, match="DigitalOcean is not set up for this bot") as e:
        features.get(ServerFeature).provider()
    assert "Add [digitalocean] with token" in e.value.todo


@pytest.mark.parametrize("implementation", [HetznerServer, DigitalOceanServer])
def test_both_providers_implement_every_operation_of_the_interface(implementation):
    wanted = {name for name, _ in inspect.getmembers(ServerProvider, inspect.isfunction)
              if not name.startswith("_")}
    for name in wanted:
        ours = getattr(implementation, name)
        assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(
            getattr(ServerProvider, name)), name
        assert list(inspect.signature(ours).parameters) == list(
            inspect.signature(getattr(ServerProvider, name)).parameters), name


def test_digitalocean_volumes_are_found_by_their_udev_name(tmp_path):
    (tmp_path / "sdb").touch()
    (tmp_path / "scsi-0DO_Volume_data").symlink_to(tmp_path / "sdb")
    lookup = DigitalOceanServer.volume_id_for_device
    assert lookup(None, tmp_path / "sdb", tmp_path) == "data"
    assert lookup(None, "/dev/disk/by-id/scsi-0DO_Volume_my-vol-part1", tmp_path) == "my-vol"
    assert lookup(None, "/dev/sda1", tmp_path) is None


def test_pydo_is_imported_only_when_digitalocean_is_used():
    code = ("import sys; import spbot.features, spbot.commands.server, spbot.commands.volume; "
            "import spbot.features.server.digitalocean; "
            "print('pydo' in sys.modules, 'azure' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "False"]
