"""`spbot dev up --simulate-cloud`: the project's local Hetzner Cloud and Cloudflare API servers
(tests/fakes/, imported from the checkout, not copied) in one background process, so `!server`,
`!volume list/grow` and `!dns check/sync` can be tried in the dev stack.

Run as `python -m spbot.devsandbox.cloud STATE_DIR`: it seeds a zone that has drifted from what the
dev config expects (one record missing, one on an old address), writes the token files and
`cloud.json` (the URLs and its pid), and serves until SIGTERM."""
from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "family.example"
IPV4 = "203.0.113.10"
OLD_IPV4 = "198.51.100.7"
SUBDOMAINS = ["cloud", "git"]


def info_path(state: Path) -> Path:
    return Path(state) / "cloud.json"


def dns_section(state: Path, info: dict) -> dict:
    return {"provider": "cloudflare", "domain": DOMAIN, "token": {"file": info["cloudflare_token"]},
            "base_url": info["cloudflare_url"], "ipv4": IPV4, "subdomains": SUBDOMAINS,
            "mail": False}


def hetzner_section(state: Path, info: dict, sandbox: bool = True) -> dict:
    """[hetzner] on the fake API; with the sandbox, volumes are found among the sandbox's disks
    (spbot/devsandbox/volumes.py), where volume 100 is mounted at /mnt/data and can be grown."""
    section = {"token": {"file": info["hetzner_token"]}, "server": "family-server",
               "api_endpoint": info["hetzner_url"], "poll_interval": 0.2, "bot_runs_on_server": False}
    if sandbox:
        section["by_id_dir"] = str(Path(state) / "sandbox" / "dev" / "disk" / "by-id")
    return section


def _seed_zone(cloudflare, expected_records, domain_config) -> None:
    cloudflare.add_zone(DOMAIN)
    config = domain_config(domain=DOMAIN, ipv4=IPV4, subdomains=tuple(SUBDOMAINS), mail=False)
    for record in expected_records(config):
        if (record.name, record.type) == ("git", "A"):
            continue                                   # a missing record for !dns sync to add
        content = record.content.replace(IPV4, OLD_IPV4) if record.name == "cloud" else record.content
        cloudflare.add_record(DOMAIN, record.type, record.fqdn(DOMAIN), content, record.ttl,
                              record.priority)


def serve(state: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from spbot.providers.dns.records import DomainConfig, expected_records
    from tests.fakes.cloudflare_api import TOKEN as CF_TOKEN
    from tests.fakes.cloudflare_api import FakeCloudflare
    from tests.fakes.hetzner_api import TOKEN as HZ_TOKEN
    from tests.fakes.hetzner_api import FakeHetzner

    import os
    hetzner, cloudflare = FakeHetzner(), FakeCloudflare()
    hetzner.start()
    cloudflare.start()
    _seed_zone(cloudflare, expected_records, DomainConfig)
    box = Path(state) / "sandbox"
    box.mkdir(parents=True, exist_ok=True)
    tokens = {"hetzner_token": box / "hetzner.token", "cloudflare_token": box / "cloudflare.token"}
    tokens["hetzner_token"].write_text(HZ_TOKEN + "\n")
    tokens["cloudflare_token"].write_text(CF_TOKEN + "\n")
    for path in tokens.values():
        path.chmod(0o600)
    info = {"pid": os.getpid(), "hetzner_url": hetzner.url, "cloudflare_url": cloudflare.url,
            **{k: str(v) for k, v in tokens.items()}}
    partial = info_path(state).with_suffix(".partial")
    partial.write_text(json.dumps(info, indent=1))
    partial.replace(info_path(state))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    hetzner.stop()
    cloudflare.stop()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
