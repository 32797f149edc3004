"""The two server providers as tests/test_cloud_chat.py runs them: each one's local API server
(tests/fakes/), its config section, the udev links of its volumes, how its fake is steered, and
what the bot's replies say where the providers differ (prices, names, metrics)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from spbot.features.server.digitalocean import connect as do_connect
from spbot.features.server.hetzner import connect as hz_connect
from spbot.features.server.settings import DigitalOceanConfig, HetznerConfig
from tests.fakes import Request, Response
from tests.fakes.digitalocean_api import FakeDigitalOcean, size_json
from tests.fakes.hetzner_api import FakeHetzner, server_type_json

PACING = """timeout = "5s"
poll_interval = 0.05
action_timeout = "20s"
shutdown_timeout = "2s"
max_retries = 3
backoff_base = 0.05
backoff_cap = 0.2
rate_limit_max_wait = "3s"
"""


def pricing(request: Request) -> Response:
    """GET /pricing, the part of Hetzner's price list the bot reads."""
    return Response(200, {"pricing": {
        "currency": "EUR", "vat_rate": "19.00",
        "volume": {"price_per_gb_month": {"net": "0.0440000000", "gross": "0.0523600000"}},
        "image": {"price_per_gb_month": {"net": "0.0110000000", "gross": "0.0130900000"}},
    }})


class HetznerSide:
    name, label, console = "hetzner", "Hetzner", "the Hetzner Cloud Console"
    token = "hz-chat-secret-0123456789"
    api = "/v1"
    reboot, shutdown, change_type, power_on = "reboot_server", "shutdown_server", "change_server_type", "start_server"
    snapshot = "create_image"
    running = "running"
    expect = {
        "type": "cx22: 2 vCPU, 4 GB RAM, 40 GB disk",
        "location": "fsn1 (Falkenstein)",
        "ipv6": "2001:db8:1234::/64",
        "traffic": "115.0 GiB out of 20.0 TiB included this month (0.6%)",
        "price": "€3.79/month (€4.51 incl. VAT)",
        "reboot_preview": "Soft reboot of family-server (cx22, fsn1, 203.0.113.10)",
        "snapshot": "“before the upgrade” is available: 1.84 GB compressed, of a 40 GB disk.",
        "token_rejected": ("⚠️ Hetzner rejected the API token: unable to authenticate. Create a "
                           "new Read & Write API token in the Hetzner Cloud Console"),
        "rate_limited": "answered 429 (rate_limit_exceeded)",
        "disk": 40, "first_type": "cx22", "new_type": "cx32",
        "plan": ("family-server: cx22: 2 vCPU, 4 GB RAM, 40 GB disk → cx32: 4 vCPU, 8 GB RAM, "
                 "80 GB disk."),
        "plan_price": "Price: €3.79 → €6.80 per month, +€3.01/month (+€3.58 incl. VAT).",
        "resized": ("✅ family-server is now a cx32 (was cx22): 4 vCPU, 8 GB RAM, 40 GB disk "
                    "(the type offers 80 GB)."),
        # Hetzner starts the server itself after change_type: no power-on is sent
        "resize_actions": ["shutdown_server", "change_server_type"],
        "grow_type": "cx42", "grown_disk": 160,
        "ten_gb": "+€0.44/month (+€0.52 incl. VAT)",
    }

    def __init__(self) -> None:
        self.fake = FakeHetzner(token=self.token)

    def start(self) -> None:
        self.fake.start()
        self.fake.route("GET", r"/v1/pricing", pricing)
        self.fake.volumes[101]["server"] = 42  # "archive" is attached too, and mounted as xfs
        self.fake.server()["volumes"].append(101)

    def links(self) -> dict[str, str]:
        return {"scsi-0HC_Volume_100": "sdb", "scsi-0HC_Volume_101": "sdc"}

    def section(self, token_file: Path, by_id: Path) -> str:
        return (f'[hetzner]\ntoken = {{ file = "{token_file}" }}\nserver = "family-server"\n'
                f'api_endpoint = "{self.fake.url}"\nby_id_dir = "{by_id}"\n{PACING}')

    def settings(self, token_file: Path, by_id: Path) -> HetznerConfig:
        return HetznerConfig.model_validate({
            "token": {"file": str(token_file)}, "server": "family-server",
            "api_endpoint": self.fake.url, "by_id_dir": str(by_id), "poll_interval": 0.05})

    def connect(self, settings: Any) -> Any:
        return hz_connect(settings, self.token)

    def volume_id(self, name: str) -> str:
        return str(next(i for i, v in self.fake.volumes.items() if v["name"] == name))

    def volume_size(self, name: str) -> int:
        return self.fake.volumes[int(self.volume_id(name))]["size"]

    def set_ipv4(self, ip: str) -> None:
        self.fake.server()["public_net"]["ipv4"]["ip"] = ip

    def commands(self) -> list[str]:
        return self.fake.commands()

    def fail_snapshot(self) -> str:
        self.fake.fail_action("create_image", message="disk is busy")
        return ("⚠️ Hetzner action “create_image” failed while creating a snapshot: "
                "disk is busy (action_failed).")

    def server_state(self) -> tuple[str, int, str]:
        server = self.fake.server()
        return server["server_type"]["name"], server["primary_disk_size"], server["status"]

    def set_server_type(self, name: str) -> None:
        """The server as the Hetzner console would leave it after a resize to `name`, disk included."""
        server = self.fake.server()
        server["server_type"] = server_type_json(name)
        server["primary_disk_size"] = server["server_type"]["disk"]


class DigitalOceanSide:
    name, label, console = "digitalocean", "DigitalOcean", "the DigitalOcean control panel"
    token = "do-chat-secret-9876543210"
    api = "/v2"
    reboot, shutdown, change_type, power_on = "reboot", "shutdown", "resize", "power_on"
    snapshot = "snapshot"
    running = "active"
    expect = {
        "type": "s-2vcpu-4gb: 2 vCPU, 4 GB RAM, 80 GB disk",
        "location": "fra1 (Frankfurt 1)",
        "ipv6": "2a03:b0c0:3:d0::1a:1/64",
        "traffic": "3.6 TiB out included per month; DigitalOcean does not report the traffic "
                   "used through its API",
        "price": "$24.00/month (before tax)",
        "reboot_preview": "Soft reboot of family-server (s-2vcpu-4gb, fra1, 203.0.113.10)",
        "snapshot": "“before the upgrade” is available: 2.34 GB billed, of a 80 GB disk.",
        "token_rejected": ("⚠️ DigitalOcean rejected the API token: Unable to authenticate you. "
                           "Create a personal access token"),
        "rate_limited": "DigitalOcean API answered 429",
        "disk": 80, "first_type": "s-2vcpu-4gb", "new_type": "s-4vcpu-8gb",
        "plan": ("family-server: s-2vcpu-4gb: 2 vCPU, 4 GB RAM, 80 GB disk → s-4vcpu-8gb: "
                 "4 vCPU, 8 GB RAM, 160 GB disk."),
        "plan_price": "Price: $24.00 → $48.00 per month, +$24.00/month (before tax).",
        "resized": ("✅ family-server is now a s-4vcpu-8gb (was s-2vcpu-4gb): 4 vCPU, 8 GB RAM, "
                    "80 GB disk (the type offers 160 GB)."),
        # DigitalOcean resizes only a droplet that is off, and does not start it again
        "resize_actions": ["shutdown", "resize", "power_on"],
        "grow_type": "s-8vcpu-16gb", "grown_disk": 320,
        "ten_gb": "+$1.00/month (before tax)",
    }

    def __init__(self) -> None:
        self.fake = FakeDigitalOcean(token=self.token)

    def start(self) -> None:
        """The same volumes as at Hetzner: "data" (50 GB, ext4) and "archive" (20 GB, xfs), both
        attached to the droplet."""
        self.fake.start()
        droplet = self.fake.droplet()
        for name, size in (("data", 50), ("archive", 20)):
            volume = self.fake.volumes[self.volume_id(name)]
            volume["size_gigabytes"] = size
            if droplet["id"] not in volume["droplet_ids"]:
                volume["droplet_ids"].append(droplet["id"])
                droplet["volume_ids"].append(volume["id"])

    def links(self) -> dict[str, str]:
        return {"scsi-0DO_Volume_data": "sdb", "scsi-0DO_Volume_archive": "sdc"}

    def section(self, token_file: Path, by_id: Path) -> str:
        return (f'[cloud]\nprovider = "digitalocean"\n\n'
                f'[digitalocean]\ntoken = {{ file = "{token_file}" }}\ndroplet = "family-server"\n'
                f'api_endpoint = "{self.fake.url}"\nmetadata_url = ""\nby_id_dir = "{by_id}"\n'
                f'{PACING}')

    def settings(self, token_file: Path, by_id: Path) -> DigitalOceanConfig:
        return DigitalOceanConfig.model_validate({
            "token": {"file": str(token_file)}, "droplet": "family-server",
            "api_endpoint": self.fake.url, "metadata_url": "", "by_id_dir": str(by_id),
            "poll_interval": 0.05})

    def connect(self, settings: Any) -> Any:
        return do_connect(settings, self.token)

    def volume_id(self, name: str) -> str:
        return next(i for i, v in self.fake.volumes.items() if v["name"] == name)

    def volume_size(self, name: str) -> int:
        return self.fake.volumes[self.volume_id(name)]["size_gigabytes"]

    def set_ipv4(self, ip: str) -> None:
        for network in self.fake.droplet()["networks"]["v4"]:
            if network["type"] == "public":
                network["ip_address"] = ip

    def commands(self) -> list[str]:
        return self.fake.action_types()

    def fail_snapshot(self) -> str:
        self.fake.fail_action("snapshot")
        return "errored while creating snapshot “spbot snapshot of family-server, "

    def server_state(self) -> tuple[str, int, str]:
        droplet = self.fake.droplet()
        return droplet["size_slug"], droplet["disk"], droplet["status"]

    def set_server_type(self, slug: str) -> None:
        """The droplet as the control panel would leave it after a resize to `slug`, disk included."""
        spec = size_json(slug)
        self.fake.droplet().update(size=spec, size_slug=slug, vcpus=spec["vcpus"], memory=spec["memory"],
                                   disk=spec["disk"], disk_info=spec["disk_info"])


SIDES = {"hetzner": HetznerSide, "digitalocean": DigitalOceanSide}
