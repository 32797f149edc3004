"""The feature shape: started in list order with their own settings, scheduled work added, status lines
gathered, stopped in reverse; a command asking for a feature the bot does not run is told so."""
from __future__ import annotations

import pytest
from pydantic import BaseModel

from spbot.config import Config, config_section
from spbot.feature import Feature, FeatureNotRunning, Features, Scheduled
from spbot.scheduler import make_scheduler


@config_section("unit_sample")
class SampleSettings(BaseModel):
    every: int = 60


EVENTS: list[str] = []


class Sample(Feature):
    name = "unit_sample"
    settings_model = SampleSettings

    async def start(self) -> None:
        EVENTS.append(f"start sample every={self.settings.every}")

    async def stop(self) -> None:
        EVENTS.append("stop sample")

    def scheduled(self) -> list[Scheduled]:
        return [Scheduled("sample-tick", "sample tick", self.tick, interval=self.settings.every),
                Scheduled("sample-night", "sample night", self.tick, cron="0 3 * * *")]

    async def tick(self) -> None:
        EVENTS.append("tick")

    async def status_lines(self) -> list[str]:
        return ["sample: fine"]


class Plain(Feature):
    name = "unit_plain"

    async def start(self) -> None:
        EVENTS.append(f"start plain settings={self.settings}")

    async def stop(self) -> None:
        EVENTS.append("stop plain")


class Host:
    def __init__(self, config: Config):
        self.config = config
        self.scheduler = make_scheduler(config.timezone)


def config(**sections) -> Config:
    return Config(homeserver="http://127.0.0.1:1", user_id="@bot:localhost", admins=["@a:localhost"],
                  state_dir="/nonexistent", password={"file": "/nonexistent"},
                  allow_any_admin_room=True,
                  timezone="Europe/Berlin", **sections)


async def test_features_start_in_order_with_their_settings_and_stop_in_reverse():
    EVENTS.clear()
    host = Host(config(unit_sample={"every": 5}))
    features = Features([Sample, Plain])
    await features.start(host)
    assert EVENTS == ["start sample every=5", "start plain settings=None"]
    jobs = {job.id: job for job in host.scheduler.get_jobs()}
    assert set(jobs) == {"sample-tick", "sample-night"}
    assert jobs["sample-tick"].trigger.interval.total_seconds() == 5
    assert str(jobs["sample-night"].trigger.timezone) == "Europe/Berlin"
    assert await features.status_lines() == ["sample: fine"]
    assert features.get(Sample).settings.every == 5
    await features.stop()
    assert EVENTS[-2:] == ["stop plain", "stop sample"]


async def test_an_absent_section_gives_the_defaults_and_an_unknown_feature_is_named():
    host = Host(config())
    features = Features([Sample])
    await features.start(host)
    assert features.get(Sample).settings.every == 60
    with pytest.raises(LookupError, match="Plain is not running"):
        features.get(Plain)


class Broken(Feature):
    name = "unit_broken"

    async def start(self) -> None:
        raise RuntimeError("a bug, with a detail the room must not see: /srv/secret-path")


class BadStop(Feature):
    name = "unit_bad_stop"

    async def stop(self) -> None:
        raise OSError("a socket already closed")

    def scheduled(self) -> list[Scheduled]:
        return [Scheduled("broken-tick", "broken tick", self.start, interval=60)]


async def test_a_feature_that_fails_to_start_is_left_out_and_its_commands_say_why():
    EVENTS.clear()
    host = Host(config())
    features = Features([Broken, Sample, Plain])
    await features.start(host)
    assert EVENTS == ["start sample every=60", "start plain settings=None"]     # the others started
    assert {job.id for job in host.scheduler.get_jobs()} == {"sample-tick", "sample-night"}
    assert features.failed == {Broken: "an internal error (RuntimeError)"}
    with pytest.raises(FeatureNotRunning) as told:
        features.get(Broken)
    assert told.value.what == "[unit_broken] did not start: an internal error (RuntimeError)"
    assert "restart me" in told.value.todo and isinstance(told.value, LookupError)
    assert await features.status_lines() == [
        "⚠️ unit_broken: not running, it did not start: an internal error (RuntimeError)", "sample: fine"]
    await features.stop()
    assert EVENTS[-2:] == ["stop plain", "stop sample"]


async def test_a_feature_that_fails_to_stop_does_not_keep_the_others_from_stopping():
    EVENTS.clear()
    features = Features([Sample, BadStop, Plain])
    await features.start(Host(config()))
    await features.stop()
    assert EVENTS[-2:] == ["stop plain", "stop sample"]


class BadSchedule(Plain):
    name = "unit_bad_schedule"

    def scheduled(self) -> list[Scheduled]:
        raise ValueError("a schedule it cannot read")


async def test_a_feature_that_started_but_cannot_schedule_its_work_is_stopped_again():
    """It counts as not started; before, what its start() set going (tasks, listeners) kept running
    in a feature the bot no longer stopped."""
    EVENTS.clear()
    features = Features([BadSchedule, Sample])
    await features.start(Host(config()))
    assert EVENTS == ["start plain settings=None", "stop plain", "start sample every=60"]
    assert features.failed == {BadSchedule: "an internal error (ValueError)"}
    await features.stop()
    assert EVENTS[-1] == "stop sample"


class Late(Plain):
    name = "unit_late"

    async def after_start(self) -> None:
        EVENTS.append("after start late")
        raise RuntimeError("a bug after starting")


class Early(Sample):
    async def after_start(self) -> None:
        EVENTS.append("after start sample")


async def test_after_start_runs_once_every_feature_started_and_its_error_leaves_the_feature_running():
    EVENTS.clear()
    features = Features([Late, Early])
    await features.start(Host(config()))
    assert EVENTS == ["start plain settings=None", "start sample every=60", "after start late",
                      "after start sample"]
    assert set(features.running) == {Late, Early} and features.failed == {}
