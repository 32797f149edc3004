"""Trend, sparkline and downsampling of disk usage samples."""
from __future__ import annotations

import pytest

from spbot.system.forecast import (BARS, DAY, HOUR, Sample, downsample, least_squares_slope,
                                   sparkline, trend)

GiB = 1024 ** 3
NOW = 1_795_000_000.0          # a fixed "now" (Nov 2026)
TOTAL = 100 * GiB


def series(days, step_hours, used_at):
    """Samples every `step_hours` over the last `days`, used = used_at(age_days)."""
    count = int(days * 24 / step_hours)
    return [Sample(NOW - i * step_hours * HOUR, round(used_at(i * step_hours / 24)), TOTAL)
            for i in range(count, -1, -1)]


# --------------------------------------------------------------------------- trend

def test_slope_of_a_line():
    assert least_squares_slope([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2)
    assert least_squares_slope([(1, 1)]) is None
    assert least_squares_slope([(1, 1), (1, 2)]) is None


def test_growing_disk_gives_days_until_full():
    # 50 GiB used now, growing 1 GiB a day → 50 GiB free → full in ~50 days
    samples = series(7, 1, lambda age: 50 * GiB - age * GiB)
    result = trend(samples, NOW)
    assert result.kind == "full" and result.growing
    assert result.bytes_per_day == pytest.approx(GiB, rel=1e-6)
    assert result.days_until_full == pytest.approx(50, rel=1e-3)
    assert result.text == "full in ~50 days"
    assert result.full_at == pytest.approx(NOW + 50 * DAY, rel=1e-6)


def test_noise_does_not_break_the_fit():
    wobble = [(-1) ** i * 0.2 * GiB for i in range(200)]
    samples = [Sample(s.timestamp, s.used + round(wobble[i]), s.total)
               for i, s in enumerate(series(7, 1, lambda age: 90 * GiB - age * 2 * GiB))]
    result = trend(samples, NOW)
    assert result.kind == "full"
    assert 4 < result.days_until_full < 6


def test_nearly_full_says_less_than_a_day():
    samples = series(2, 1, lambda age: TOTAL - 0.5 * GiB - age * 2 * GiB)
    assert trend(samples, NOW).text == "full in less than a day"


def test_one_day_left_is_singular():
    samples = series(3, 1, lambda age: TOTAL - 3.6 * GiB - age * 3 * GiB)   # 1.2 days
    assert trend(samples, NOW).text == "full in ~1 day"


def test_flat_disk_is_stable():
    samples = series(7, 1, lambda age: 40 * GiB)
    result = trend(samples, NOW)
    assert result.kind == "stable" and result.text == "stable" and result.days_until_full is None


def test_slow_growth_is_stable():
    # 10 MiB a day on a 100 GiB disk: 0.3 GiB a month, under 0.5 % of the disk
    samples = series(7, 1, lambda age: 40 * GiB - age * 10 * 1024 ** 2)
    assert trend(samples, NOW).kind == "stable"


def test_shrinking_disk():
    samples = series(7, 1, lambda age: 40 * GiB + age * GiB)
    result = trend(samples, NOW)
    assert result.kind == "shrinking" and result.bytes_per_day < 0 and result.days_until_full is None


def test_too_little_history_is_unknown():
    assert trend([], NOW).kind == "unknown"
    assert trend(series(0.1, 1, lambda age: GiB), NOW).kind == "unknown"   # 2 samples
    assert trend(series(0.2, 0.5, lambda age: GiB - age * GiB), NOW).kind == "unknown"  # < 6 h


def test_only_the_window_counts():
    # fast growth long ago, flat for the last week
    old = series(30, 6, lambda age: 10 * GiB if age < 8 else 10 * GiB - (age - 8) * GiB)
    assert trend(old, NOW, window_days=7).kind == "stable"
    assert trend(old, NOW, window_days=30).kind == "full"


def test_plain_tuples_and_unsorted_input():
    samples = [(s.timestamp, s.used, s.total) for s in series(7, 1, lambda age: 50 * GiB - age * GiB)]
    assert trend(list(reversed(samples)), NOW).text == "full in ~50 days"


# --------------------------------------------------------------------------- sparkline

def test_sparkline_has_fixed_width_and_rises():
    line = sparkline(series(7, 1, lambda age: 50 * GiB - age * 5 * GiB), NOW, width=28)
    assert len(line) == 28
    assert line[0] == BARS[0] and line[-1] == BARS[-1]
    assert list(line) == sorted(line, key=BARS.index)


def test_sparkline_gaps_and_flat():
    samples = [s for s in series(7, 1, lambda age: 30 * GiB) if not 2 <= (NOW - s.timestamp) / DAY <= 4]
    line = sparkline(samples, NOW, width=14)
    assert len(line) == 14
    assert line[6:10] == "    "                               # the two days without samples
    assert set(line.replace(" ", "")) == {BARS[3]} or set(line.replace(" ", "")) == {BARS[4]}


def test_sparkline_without_samples_is_blank():
    assert sparkline([], NOW, width=10) == " " * 10
    assert sparkline(series(30, 24, lambda age: GiB), NOW - 20 * DAY, width=5).strip()  # old window
    assert sparkline([Sample(NOW - 10 * DAY, GiB, TOTAL)], NOW, width=7) == " " * 7


def test_sparkline_small_wobble_stays_low_key():
    # 0.1 percentage point of noise on a flat disk must not span the whole scale
    samples = series(7, 1, lambda age: 30 * GiB + (0.1 * GiB if int(age) % 2 else 0))
    line = sparkline(samples, NOW, width=7)
    assert set(line) <= set(BARS[2:6])


# --------------------------------------------------------------------------- downsampling

def test_downsample_keeps_recent_and_averages_older():
    samples = series(60, 0.25, lambda age: 10 * GiB + age * 0.1 * GiB)   # every 15 minutes
    out = downsample(samples, NOW)
    recent = [s for s in out if NOW - s.timestamp <= DAY]
    hourly = [s for s in out if DAY < NOW - s.timestamp <= 30 * DAY]
    daily = [s for s in out if NOW - s.timestamp > 30 * DAY]
    assert len(recent) == 97                                # every sample of the last day
    assert 29 * 24 - 2 <= len(hourly) <= 29 * 24 + 2         # one per hour
    assert 29 <= len(daily) <= 31                            # one per day
    assert [s.timestamp for s in out] == sorted(s.timestamp for s in out)
    assert len(out) < len(samples) / 4


def test_downsample_averages_values():
    base = NOW - 40 * DAY
    day_start = base - base % DAY
    samples = [Sample(day_start + 3600, 100, 1000), Sample(day_start + 7200, 300, 1000)]
    [one] = downsample(samples, NOW)
    assert one == Sample(day_start + 5400, 200, 1000)


def test_downsample_is_idempotent():
    samples = series(45, 0.5, lambda age: 10 * GiB + age * 0.3 * GiB)
    once = downsample(samples, NOW)
    assert downsample(once, NOW) == once


def test_downsample_preserves_trend():
    samples = series(7, 0.1, lambda age: 50 * GiB - age * GiB)
    reduced = downsample(samples, NOW)
    assert len(reduced) < len(samples) / 3
    assert trend(reduced, NOW).days_until_full == pytest.approx(trend(samples, NOW).days_until_full,
                                                                 rel=0.02)
