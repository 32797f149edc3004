"""The disk rules and the sample history with a real SQLite store and the real Alerts class; only the
host around the disk feature is a stand-in (it records what would be posted instead of sending it to
Matrix)."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from spbot.alerts import Alerts
from spbot.alerts_settings import AlertSettings
from spbot.features.disk import DiskFeature, DiskSettings
from spbot.features.disk.rules import forecast_bad, level
from spbot.features.disk.samples import SampleStore
from spbot.features.disk.usage import UsageUnavailable, read_usage, read_usage_file, watched
from spbot.features.disk.watch import DiskWatch
from spbot.render import Reply
from spbot.store import Store
from spbot.system.disks import MountUsage
from spbot.system.forecast import DAY, HOUR, trend

GiB = 1024 ** 3
ADMINS = ["@alice:example.org", "@bob:example.org"]
T0 = 1_800_000_000.0          # a fixed "now" (2027-01-15)


class StandInHost:
    """What the disk feature and Alerts use of the host (spbot.feature.Host): the store, the admins,
    the alerts, notify()."""

    def __init__(self, store: Store):
        self.store = store
        self.config = SimpleNamespace(admins=ADMINS, timezone="UTC", settings=lambda name: AlertSettings())
        self.posted: list[Reply] = []
        self.alerts = Alerts(store, self, self.config)

    async def notify(self, reply: Reply, rooms=None, once=None) -> list[int]:
        self.posted.append(reply)
        return [len(self.posted)]


@pytest.fixture
async def store(tmp_path):
    store = await Store(tmp_path / "spbot.db").open()
    yield store
    await store.close()


async def stand_in(store: Store) -> StandInHost:
    host = StandInHost(store)
    await host.alerts.start()
    return host


async def new_watch(store: Store, **settings) -> tuple[StandInHost, DiskWatch]:
    """The disk feature as the bot starts it, with these [disk] settings; its sampler and rules."""
    host = await stand_in(store)
    feature = DiskFeature(host, DiskSettings(**settings))
    await feature.start()
    return host, feature.watch


def usage(mount: str, percent: float, total: int = 100 * GiB, **extra) -> MountUsage:
    used = int(total * percent / 100)
    return MountUsage(mountpoint=mount, device="/dev/sdb1", fstype="ext4", total=total, used=used,
                      free=total - used, percent=percent, **extra)


# --------------------------------------------------------------------------- level and hysteresis

@pytest.mark.parametrize("percent, active, expected", [
    (84.9, None, None), (85.0, None, "warning"), (94.9, None, "warning"), (95.0, None, "critical"),
    (82.0, "warning", "warning"),     # in the hysteresis band: stays
    (80.0, "warning", "warning"),     # exactly threshold - 5 still counts as bad
    (79.9, "warning", None),          # below it: clears
    (91.0, "critical", "critical"),   # critical holds down to 90
    (89.9, "critical", "warning"),
    (79.0, "critical", None),
    (99.0, "warning", "critical"),
])
def test_level_with_hysteresis(percent, active, expected):
    assert level(percent, 85, 95, 5, active) == expected


def test_forecast_rule_with_hysteresis():
    growing = trend([(T0 - 2 * DAY + i * HOUR, 50 * GiB + i * GiB // 5, 100 * GiB) for i in range(49)], T0)
    assert growing.kind == "full" and 7 < growing.days_until_full < 9      # 40.4 GiB free at 4.8 GiB/day
    assert not forecast_bad(growing, 7, active=False)
    assert forecast_bad(growing, 7, active=True)                           # clears only beyond 10.5
    assert forecast_bad(growing, 9, active=False)
    assert not forecast_bad(growing, 0, active=False)                      # 0 turns the rule off
    flat = trend([(T0 - 2 * DAY + i * HOUR, 50 * GiB, 100 * GiB) for i in range(49)], T0)
    assert flat.kind == "stable" and not forecast_bad(flat, 7, active=True)


# --------------------------------------------------------------------------- settings and source

def test_per_mount_limits_and_validation():
    settings = DiskSettings(mounts={"/srv": {"warn_percent": 70, "critical_percent": 90},
                                    "/backup/": {"forecast_days": 0}})
    assert (settings.limits("/srv").warn, settings.limits("/srv").critical) == (70, 90)
    assert settings.limits("/").warn == 85 and settings.limits("/").forecast_days == 7
    assert settings.limits("/backup").forecast_days == 0
    with pytest.raises(ValidationError, match="critical_percent"):
        DiskSettings(warn_percent=90, critical_percent=80)
    with pytest.raises(ValidationError, match="mounts./srv"):
        DiskSettings(mounts={"/srv": {"warn_percent": 96}})
    with pytest.raises(ValidationError):
        DiskSettings(renotify="often")
    with pytest.raises(ValidationError):
        DiskSettings(sample_intervall="1s")                                 # typos are caught
    assert DiskSettings(sample_interval="1s", renotify="24h").renotify == 86400


async def test_usage_file_is_the_adapter_boundary(tmp_path):
    path = tmp_path / "usage.json"
    path.write_text(json.dumps({"mounts": [
        {"mountpoint": "/srv", "device": "/dev/sdb1", "total": 100, "used": 87, "free": 13,
         "inodes_total": 1000, "inodes_used": 950},
        {"mountpoint": "/mnt/nfs", "available": False, "error": "did not answer within 5s"}]}))
    usages = read_usage_file(path)
    assert [u.mountpoint for u in usages] == ["/mnt/nfs", "/srv"]
    assert usages[1].percent == 87.0 and usages[1].inodes_percent == 95.0
    assert not usages[0].available
    settings = DiskSettings(usage_source=path)
    assert [u.mountpoint for u in await read_usage(settings, "/srv/data/x")] == ["/srv"]
    path.write_text("{broken")
    with pytest.raises(UsageUnavailable, match="not valid JSON"):
        read_usage_file(path)
    with pytest.raises(UsageUnavailable, match="usage file"):
        read_usage_file(tmp_path / "missing.json")


def test_watch_mounts_filters():
    usages = [usage("/", 10), usage("/srv", 20, also_mounted_at=["/var/lib/nextcloud"])]
    assert watched(usages, DiskSettings()) == usages
    assert [u.mountpoint for u in watched(usages, DiskSettings(watch_mounts=["/srv/"]))] == ["/srv"]
    assert [u.mountpoint for u in watched(usages, DiskSettings(watch_mounts=["/var/lib/nextcloud"]))] == \
        ["/srv"]


# --------------------------------------------------------------------------- alerts over time

async def test_warn_once_stay_renotify_hysteresis_recovery(store):
    bot, watch = await new_watch(store, renotify=3600)
    await watch.check([usage("/srv", 50)], T0)
    assert bot.posted == []

    await watch.check([usage("/srv", 87)], T0 + 60)
    [alert] = bot.posted
    assert alert.mentions == ADMINS
    assert "⚠️ /srv is filling up: 87% used, 13.0 GiB free of 100.0 GiB" in alert.body
    assert "!disk /srv" in alert.body and "!cleanup" in alert.body
    assert 'href="https://matrix.to/#/@alice:example.org"' in alert.html

    for minute in range(2, 30):                        # stays bad: no repeat before renotify
        await watch.check([usage("/srv", 86 + minute % 3)], T0 + minute * 60)
    assert len(bot.posted) == 1

    await watch.check([usage("/srv", 88)], T0 + 60 + 3600)   # renotify interval passed
    assert len(bot.posted) == 2 and "⚠️ still: /srv is filling up: 88% used" in bot.posted[1].body

    await watch.check([usage("/srv", 81)], T0 + 3700)        # below 85 but within 5 points
    assert len(bot.posted) == 2
    await watch.check([usage("/srv", 79)], T0 + 3800)
    # the alert rang, so its recovery rings the same admins (issue 15)
    assert bot.posted[2].body == f"{' '.join(ADMINS)}: ✅ resolved: /srv is back to 79% full (21.0 GiB free of 100.0 GiB)"
    assert bot.posted[2].mentions == ADMINS and bot.posted[2].ring
    await watch.check([usage("/srv", 79)], T0 + 3900)
    assert len(bot.posted) == 3


async def test_escalation_and_restart_do_not_duplicate(store):
    bot, watch = await new_watch(store)
    await watch.check([usage("/srv", 90)], T0)
    await watch.check([usage("/srv", 96)], T0 + 60)
    assert [r.body.split(": ", 1)[1].split()[0] for r in bot.posted] == ["⚠️", "🚨"]
    assert "/srv is almost full: 96% used" in bot.posted[1].body

    restarted, watch_again = await new_watch(store)   # same SQLite file, new process state
    await watch_again.check([usage("/srv", 96)], T0 + 120)
    await watch_again.check([usage("/srv", 92)], T0 + 180)    # critical holds down to 90
    assert restarted.posted == []
    await watch_again.check([usage("/srv", 70)], T0 + 240)
    assert [r.body.split(": ", 1)[1] for r in restarted.posted] == [
        "✅ resolved: /srv is back to 70% full (30.0 GiB free of 100.0 GiB)"]
    assert restarted.posted[0].mentions == ADMINS


async def test_per_mount_thresholds_and_inodes_and_unreadable(store):
    bot, watch = await new_watch(store, mounts={"/backup": {"warn_percent": 97, "critical_percent": 99}})
    await watch.check([usage("/backup", 96), usage("/", 10, inodes_percent=93.0),
                       MountUsage(mountpoint="/mnt/nfs", available=False, error="did not answer within 5s")],
                      T0)
    bodies = [r.body for r in bot.posted]
    assert not any("/backup" in b for b in bodies)
    assert any("⚠️ / is running out of inodes (room for files): 93% used" in b for b in bodies)
    assert any("⚠️ /mnt/nfs does not answer: did not answer within 5s" in b for b in bodies)
    await watch.check([usage("/backup", 96), usage("/", 10, inodes_percent=50.0),
                       usage("/mnt/nfs", 5)], T0 + 60)
    assert {r.body.split(": ", 1)[1] for r in bot.posted[2:]} == {
        "✅ resolved: / has enough free inodes again (50% used)", "✅ resolved: /mnt/nfs answers again"}


async def test_forecast_from_recorded_samples(store):
    bot, watch = await new_watch(store)
    for hour in range(48):                              # 48 h of growth: 2.5 GiB per hour
        at = T0 - (48 - hour) * HOUR
        await watch.samples.record([MountUsage(mountpoint="/srv", total=1000 * GiB,
                                               used=int(600 * GiB + hour * 2.5 * GiB),
                                               free=int(400 * GiB - hour * 2.5 * GiB))], at)
    now_usage = MountUsage(mountpoint="/srv", total=1000 * GiB, used=int(720 * GiB), free=int(280 * GiB),
                           percent=72.0)
    await watch.samples.record([now_usage], T0)
    await watch.check([now_usage], T0)
    [alert] = bot.posted
    assert "⚠️ /srv will be full in ~5 days at the current rate (+60.0 GiB/day, 72% used now)" in alert.body
    assert (await watch.trend_of("/srv", T0)).kind == "full"


async def test_tick_reads_the_source_records_and_alerts(store, tmp_path):
    path = tmp_path / "usage.json"
    bot, watch = await new_watch(store, usage_source=path)
    await watch.tick(T0)                                # no file yet: logged, skipped, no crash
    path.write_text(json.dumps([{"mountpoint": "/data", "total": 1000, "used": 960, "free": 40}]))
    await watch.tick(T0 + 60)
    assert [s.used for s in await watch.samples.history("/data", 0)] == [960]
    assert "🚨 /data is almost full: 96% used" in bot.posted[0].body


# --------------------------------------------------------------------------- bounded history

async def test_compaction_bounds_the_history_and_keeps_the_trend(store):
    samples = SampleStore(store)
    await samples.start()
    start = T0 - 45 * DAY
    rows = [("/srv", start + i * 300, int(100 * GiB + i * 300 * GiB / DAY), 1000 * GiB)
            for i in range(int(45 * DAY / 300))]           # every 5 minutes, 1 GiB/day growth
    await store.db.executemany("INSERT INTO disk_samples(mount, ts, used, total) VALUES(?,?,?,?)", rows)
    await store.db.commit()
    before = trend(await samples.history("/srv", T0 - 7 * DAY), T0)

    removed = await samples.compact(T0, history_days=40)
    left = await samples.history("/srv", 0)
    assert removed > len(rows) - len(left)          # old rows out, their means in
    day_start = math.floor(T0 / DAY) * DAY
    raw = [s for s in left if s.timestamp >= day_start - DAY]
    hourly = [s for s in left if day_start - 30 * DAY <= s.timestamp < day_start - DAY]
    daily = [s for s in left if s.timestamp < day_start - 30 * DAY]
    assert len(raw) == len([r for r in rows if r[1] >= day_start - DAY])     # recent samples untouched
    assert len(hourly) == 29 * 24
    assert len(daily) in (9, 10)                            # 40 days kept in all
    assert min(s.timestamp for s in left) >= T0 - 40 * DAY
    assert len(left) <= 2 * 288 + 29 * 24 + 10 < len(rows) / 10   # at most two raw days
    after = trend(await samples.history("/srv", T0 - 7 * DAY), T0)
    assert after.bytes_per_day == pytest.approx(before.bytes_per_day, rel=0.01)
    assert after.bytes_per_day == pytest.approx(GiB, rel=0.01)

    assert await samples.compact(T0, history_days=40) == 0  # idempotent
    assert await samples.compact(T0 + 600, history_days=40) == 0


async def test_compaction_removes_duplicate_rows(store):
    samples = SampleStore(store)
    await samples.start()
    old = T0 - 10 * DAY
    for _ in range(2):
        await samples.record([MountUsage(mountpoint="/", total=100, used=50, free=50)], old)
    await samples.compact(T0, history_days=400)
    assert await samples.history("/", 0) == [(old, 50, 100)]


# --------------------------------------------------------------------------- the feature

async def test_the_feature_samples_a_second_after_start_and_reports_a_status_line(store, tmp_path):
    path = tmp_path / "usage.json"
    path.write_text(json.dumps([{"mountpoint": "/data", "total": 100 * GiB, "used": 96 * GiB,
                                 "free": 4 * GiB}]))
    host = await stand_in(store)
    feature = DiskFeature(host, DiskSettings(usage_source=path, sample_interval="1m"))
    await feature.start()
    [work] = feature.scheduled()
    assert (work.id, work.name, work.interval, work.first_in) == ("disk-sampler", "disk sampler and alerts",
                                                                  60, 1)
    assert work.run == feature.watch.tick
    assert await feature.status_lines() == ["disks: /data 96% (4.0 GiB free) 🚨"]
