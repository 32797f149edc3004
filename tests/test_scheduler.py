"""Crontab lines as the config writes them, turned into APScheduler triggers (Sunday = 0 or 7)."""
from datetime import datetime, timezone

import pytest

from spbot.scheduler import cron_trigger

MONDAY = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("line, weekday, hour", [
    ("0 4 * * 0", "Sunday", 4), ("0 4 * * 7", "Sunday", 4), ("30 3 * * 1-5", "Tuesday", 3),
    ("0 5 * * 0-2", "Tuesday", 5), ("0 6 * * */2", "Tuesday", 6), ("0 9 * * sat", "Saturday", 9),
])
def test_weekdays_count_from_sunday(line, weekday, hour):
    fire = cron_trigger(line, "UTC").get_next_fire_time(None, MONDAY)
    assert (fire.strftime("%A"), fire.hour) == (weekday, hour)


def test_seconds_field_first():
    fire = cron_trigger("*/2 * * * * *", "UTC").get_next_fire_time(None, MONDAY)
    assert (fire - MONDAY).total_seconds() == 0


@pytest.mark.parametrize("line", ["0 4 * *", "0 4 * * 8", "61 * * * *"])
def test_bad_lines_are_clear_errors(line):
    with pytest.raises(ValueError):
        cron_trigger(line, "UTC")
