"""The upgrade feature in-process: its scheduled work follows [upgrade] (none on a system it cannot
upgrade), and at start it tells a reboot from a restart of the bot by the kernel's boot id."""
from __future__ import annotations

from pathlib import Path

from spbot.config import Config
from spbot.feature import Features
from spbot.features.upgrade.feature import UpgradeFeature
from spbot.scheduler import make_scheduler
from spbot.store import Store

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
ALPINE = 'PRETTY_NAME="Alpine Linux v3.20"\nID=alpine\nVERSION_ID=3.20.0\n'


class Host:
    """The parts of the runtime the feature uses at start: a real store and scheduler; what it
    says and alerts is recorded."""

    def __init__(self, config: Config, store: Store):
        self.config = config
        self.store = store
        self.scheduler = make_scheduler(config.timezone)
        self.alerts = self
        self.said: list[str] = []

    async def notify(self, reply, rooms=None, once=None) -> list[int]:
        self.said.append(reply.body)
        return [1]

    async def clear(self, key: str, text: str) -> None:
        self.said.append(f"cleared {key}")

    def admin_rooms(self) -> list[str]:
        return ["!admins:localhost"]


def config(tmp_path: Path, os_release: str, **upgrade) -> Config:
    (tmp_path / "os-release").write_text(os_release)
    (tmp_path / "boot_id").write_text("boot-1\n")
    (tmp_path / "uptime").write_text("42.0 80.0\n")
    missing = str(tmp_path / "none")
    return Config(homeserver="http://127.0.0.1:1", user_id="@bot:localhost", admins=["@a:localhost"],
                  state_dir=str(tmp_path), password={"file": missing}, allow_any_admin_room=True,
                  timezone="Europe/Berlin",
                  upgrade={"os_release": str(tmp_path / "os-release"), "boot_id_file": str(tmp_path / "boot_id"),
                           "uptime_file": str(tmp_path / "uptime"),
                           "apt": {"reboot_required_file": missing}, **upgrade})


async def started(tmp_path: Path, cfg: Config) -> tuple[Host, Features]:
    host = Host(cfg, await Store(tmp_path / "spbot.db").open())
    features = Features([UpgradeFeature])
    await features.start(host)
    return host, features


async def test_the_daily_check_and_the_window_are_scheduled_as_configured(tmp_path):
    host, _ = await started(tmp_path, config(tmp_path, DEBIAN, auto_upgrade=True, auto_cron="0 4 * * 0"))
    jobs = {job.id: job for job in host.scheduler.get_jobs()}
    assert set(jobs) == {"upgrade-check", "upgrade-auto"}
    assert (jobs["upgrade-check"].name, jobs["upgrade-auto"].name) == ("upgrade check", "automatic upgrade")
    assert str(jobs["upgrade-check"].trigger.timezone) == "Europe/Berlin"
    assert "hour='6'" in str(jobs["upgrade-check"].trigger)
    assert "day_of_week='sun'" in str(jobs["upgrade-auto"].trigger)
    await host.store.close()


async def test_nothing_is_scheduled_on_a_system_it_cannot_upgrade_or_when_turned_off(tmp_path):
    host, _ = await started(tmp_path, config(tmp_path, ALPINE, auto_upgrade=True))
    assert host.scheduler.get_jobs() == []
    await host.store.close()
    host, _ = await started(tmp_path, config(tmp_path, DEBIAN, check_enabled=False))
    assert host.scheduler.get_jobs() == []
    await host.store.close()


async def test_a_new_boot_without_a_reboot_asked_is_told_and_a_restart_of_the_bot_is_not(tmp_path):
    cfg = config(tmp_path, DEBIAN, check_enabled=False)
    host, _ = await started(tmp_path, cfg)
    assert host.said == []                                  # the first start: nothing to compare with
    await host.store.close()
    host, _ = await started(tmp_path, cfg)
    assert host.said == []                                  # same boot: only the bot restarted
    await host.store.close()
    (tmp_path / "boot_id").write_text("boot-2\n")
    host, _ = await started(tmp_path, cfg)
    assert host.said[0] == ("@a:localhost: ⚠️ The server restarted without a !reboot (power cut, crash, or a "
                            "reboot from outside the bot); I am back, up 42 s.\nNo reboot needed.\nIf that was "
                            "not expected, look at the provider's console and !status.")
    assert host.said[1:] == ["cleared upgrade:reboot-required"]
    await host.store.close()
