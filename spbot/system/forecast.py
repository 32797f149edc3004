"""Disk trends from usage samples: days until full, a 7-day sparkline, downsampling for storage.

Pure functions over `Sample(timestamp, used, total)` (epoch seconds, bytes); `now` is always a
parameter so results are reproducible.
"""
from __future__ import annotations

import math
from typing import Iterable, Literal, NamedTuple, Sequence

from spbot.model import Model

HOUR = 3600.0
DAY = 86400.0
BARS = "▁▂▃▄▅▆▇█"


class Sample(NamedTuple):
    timestamp: float
    used: int
    total: int


class Trend(Model):
    """`kind`: full (growing; see days_until_full), stable, shrinking, or unknown (too few data)."""
    kind: Literal["full", "stable", "shrinking", "unknown"]
    bytes_per_day: float = 0.0
    days_until_full: float | None = None
    full_at: float | None = None
    text: str

    @property
    def growing(self) -> bool:
        return self.kind == "full"


def _as_samples(samples: Iterable[Sequence[float]]) -> list[Sample]:
    return sorted((Sample(float(s[0]), int(s[1]), int(s[2])) for s in samples),
                  key=lambda s: s.timestamp)


def least_squares_slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Slope of the least-squares line through (x, y) points; None without spread in x."""
    n = len(points)
    if n < 2:
        return None
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx


def _days_text(days: float) -> str:
    if days < 1:
        return "full in less than a day"
    return f"full in ~{round(days)} day{'s' if round(days) != 1 else ''}"


def trend(samples: Iterable[Sequence[float]], now: float, window_days: float = 7.0,
          min_span_hours: float = 6.0, min_samples: int = 3, stable_fraction: float = 0.005,
          horizon_days: float = 3650.0) -> Trend:
    """Least-squares trend of `used` over the last `window_days` before `now`.

    Growth of less than `stable_fraction` of the disk per 30 days (either way), or a full date
    beyond `horizon_days`, counts as stable. Needs `min_samples` spread over `min_span_hours`.
    """
    recent = [s for s in _as_samples(samples) if now - window_days * DAY <= s.timestamp <= now]
    if len(recent) < min_samples or recent[-1].timestamp - recent[0].timestamp < min_span_hours * HOUR:
        return Trend(kind="unknown", text="not enough history yet")
    slope = least_squares_slope([(s.timestamp / DAY, float(s.used)) for s in recent]) or 0.0
    last = recent[-1]
    if abs(slope) * 30 < stable_fraction * last.total:
        return Trend(kind="stable", bytes_per_day=slope, text="stable")
    if slope < 0:
        return Trend(kind="shrinking", bytes_per_day=slope, text="shrinking")
    days = max(last.total - last.used, 0) / slope
    if days > horizon_days:
        return Trend(kind="stable", bytes_per_day=slope, text="stable")
    return Trend(kind="full", bytes_per_day=slope, days_until_full=days,
                 full_at=last.timestamp + days * DAY, text=_days_text(days))


def _bucket_means(samples: list[Sample], start: float, width_s: float, count: int) -> list[float | None]:
    sums = [0.0] * count
    counts = [0] * count
    for s in samples:
        index = int((s.timestamp - start) // width_s)
        if 0 <= index < count and s.total > 0:
            sums[index] += 100.0 * s.used / s.total
            counts[index] += 1
    return [sums[i] / counts[i] if counts[i] else None for i in range(count)]


def sparkline(samples: Iterable[Sequence[float]], now: float, days: float = 7.0, width: int = 28,
              min_range: float = 1.0, empty: str = " ") -> str:
    """A `width`-character sparkline of percent used over the last `days` (oldest left).

    Each character is the mean of its time bucket; buckets without samples show `empty`. The
    scale runs from the lowest to the highest bucket, but spans at least `min_range` percentage
    points so that noise on a flat disk does not look like a cliff.
    """
    span = days * DAY
    means = _bucket_means(_as_samples(samples), now - span, span / width, width)
    values = [m for m in means if m is not None]
    if not values:
        return empty * width
    low, high = min(values), max(values)
    if high - low < min_range:
        middle = (high + low) / 2
        low, high = middle - min_range / 2, middle + min_range / 2
    top = len(BARS) - 1
    return "".join(empty if m is None else BARS[min(top, max(0, round((m - low) / (high - low) * top)))]
                   for m in means)


def _average(group: list[Sample]) -> Sample:
    n = len(group)
    return Sample(sum(s.timestamp for s in group) / n,
                  round(sum(s.used for s in group) / n),
                  round(sum(s.total for s in group) / n))


def _bucket_width(age: float, raw_for: float, hourly_for: float) -> float | None:
    if age <= raw_for:
        return None
    return HOUR if age <= hourly_for else DAY


def downsample(samples: Iterable[Sequence[float]], now: float, raw_days: float = 1.0,
               hourly_days: float = 30.0) -> list[Sample]:
    """Keep every sample of the last `raw_days`, hourly means up to `hourly_days`, daily means after.

    Buckets are aligned to UTC hours and days; an averaged sample keeps the mean timestamp of its
    bucket, so running downsample again on its own output changes nothing.
    """
    raw_for, hourly_for = raw_days * DAY, hourly_days * DAY
    kept: list[Sample] = []
    groups: dict[tuple[float, int], list[Sample]] = {}
    for s in _as_samples(samples):
        width = _bucket_width(now - s.timestamp, raw_for, hourly_for)
        if width is None:
            kept.append(s)
        else:
            groups.setdefault((width, math.floor(s.timestamp / width)), []).append(s)
    kept += [_average(group) for group in groups.values()]
    return sorted(kept, key=lambda s: s.timestamp)
