"""The backup feature's shape: its cron entries (with [backup] misfire_grace, "off" left out), the watchdog
task started only with services and ended at stop, the !status line, and doctor lines only with [backup]."""
from __future__ import annotations

import asyncio

from spbot.config import Config
from spbot.feature import Features
from spbot.features import all_features
from spbot.features.backup import BackupFeature
from spbot.scheduler import make_scheduler
from spbot.store import Store


class Host:
    def __init__(self, config: Config, store: Store):
        self.config = config
        self.store = store
        self.scheduler = make_scheduler(config.timezone)
        self.tasks: list[asyncio.Task] = []

    def spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self.tasks.append(task)
        return task


def config(tmp_path, **sections) -> Config:
    return Config(homeserver="http://127.0.0.1:1", user_id="@bot:localhost", admins=["@a:localhost"],
                  state_dir=tmp_path, password={"file": "/nonexistent"}, allow_any_admin_room=True,
                  timezone="Europe/Berlin", **sections)


async def started(tmp_path, **sections) -> tuple[Host, Features]:
    store = await Store(tmp_path / "spbot.db").open()
    host = Host(config(tmp_path, **sections), store)
    features = Features([BackupFeature])
    await features.start(host)
    return host, features


def test_backup_is_in_the_feature_list():
    assert BackupFeature in all_features()


async def test_cron_entries_watchdog_and_status_with_services(tmp_path):
    (tmp_path / "data").mkdir()
    host, features = await started(tmp_path, backup={
        "services": {"files": {"paths": [str(tmp_path / "data")]}},
        "drill_schedule": "off", "misfire_grace": "10s", "watchdog_interval": "1h"})
    try:
        jobs = {job.id: job for job in host.scheduler.get_jobs()}
        assert set(jobs) == {"backup-auto", "backup-retention", "backup-digest"}
        assert all(job.misfire_grace_time == 10 and job.max_instances == 1 for job in jobs.values())
        assert str(jobs["backup-auto"].trigger.timezone) == "Europe/Berlin"
        assert [task.get_name() for task in host.tasks] == ["backup watchdog"]
        assert await features.status_lines() == ["backups (last success): files never"]
    finally:
        await features.stop()
        await host.store.close()
    assert host.tasks[0].cancelled()


async def test_no_services_no_schedules_no_watchdog_no_status(tmp_path):
    host, features = await started(tmp_path)
    try:
        assert host.scheduler.get_jobs() == [] and host.tasks == []
        assert await features.status_lines() == []
        assert features.get(BackupFeature).backups.settings.services == {}
    finally:
        await features.stop()
        await host.store.close()


async def test_doctor_says_nothing_without_a_backup_section(tmp_path):
    assert await BackupFeature.doctor(config(tmp_path)) == []
