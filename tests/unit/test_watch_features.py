"""The services feature's scheduled checks follow [health] (the unit check only where systemd runs the
machine, the certificate check only with domains), and its start makes !service restart's unit
argument check against [services]."""
from __future__ import annotations

import pytest

from spbot.config import Config
from spbot.features.services import ServicesFeature, UnitName
from spbot.system.services import UnitNameError


class Host:
    def __init__(self, config: Config):
        self.config = config


def config(**sections) -> Config:
    return Config(homeserver="http://127.0.0.1:1", user_id="@bot:localhost", admins=["@a:localhost"],
                  state_dir="/nonexistent", password={"file": "/nonexistent"},
                  allow_any_admin_room=True, **sections)


def started(chosen: Config) -> ServicesFeature:
    return ServicesFeature.create(Host(chosen), chosen)


async def test_checks_are_scheduled_where_they_apply(tmp_path):
    running = started(config(health={"systemd_dir": str(tmp_path), "tls_domains": ["example.org"]}))
    await running.start()
    work = {w.id: w for w in running.scheduled()}
    assert set(work) == {"health-failed-units", "health-tls"}
    assert (work["health-failed-units"].interval, work["health-failed-units"].first_in) == (300, 2)
    assert (work["health-tls"].interval, work["health-tls"].first_in) == (21600, 2)

    without = started(config(health={"systemd_dir": str(tmp_path / "missing")}))
    await without.start()
    assert without.scheduled() == []


async def test_start_checks_unit_names_against_services():
    running = started(config(services={"units": ["nginx"]}))
    await running.start()
    try:
        assert UnitName.parse_arg("nginx") == "nginx.service"
        with pytest.raises(UnitNameError, match="gitea"):
            UnitName.parse_arg("gitea")
    finally:
        UnitName.configured = None
