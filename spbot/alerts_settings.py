"""[alerts]: who an alert of each severity mentions (and so wakes), how often it is repeated, and the quiet
hours during which only critical alerts go out."""
from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import ConfigDict, Field, field_validator

from .config import Duration, config_section
from spbot.model import Model

_CLOCK = r"([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?"
_WINDOW = re.compile(rf"^\s*{_CLOCK}\s*-\s*{_CLOCK}\s*$")


class SeverityPolicy(Model):
    """[alerts.warning]: alerts that need attention soon (a disk filling up, a failed backup)."""
    model_config = ConfigDict(extra="forbid")
    mention: Literal["admins", "none"] = Field(
        "admins",
        description="admins: the alert mentions every admin it is for, so their phones ring; none: a quiet "
                    "notice in the room.")
    renotify: Duration | None = Field(
        None, description="How often the alert is repeated while it holds. Absent: as the part that raised it "
                          "asks (e.g. [disk] renotify), else once a day.")


class InfoPolicy(SeverityPolicy):
    """[alerts.info]: alerts for information only; by default a quiet notice that mentions nobody."""
    mention: Literal["admins", "none"] = Field(
        "none",
        description="admins: the alert mentions every admin it is for, so their phones ring; none: a quiet "
                    "notice in the room.")


class CriticalPolicy(SeverityPolicy):
    """[alerts.critical]: alerts that need attention now (a disk almost full, no recent backup); never held
    by the quiet hours."""


class QuietHours:
    """A daily window of wall-clock time in a time zone, e.g. 22:00-07:00 (it may cross midnight)."""

    def __init__(self, start: time, end: time, tz: str):
        self.start, self.end, self.tz = start, end, ZoneInfo(tz)

    def contains(self, when: float) -> bool:
        now = datetime.fromtimestamp(when, self.tz).time()
        if self.start <= self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def ends_after(self, when: float) -> float:
        """The UNIX time at which the quiet hours that contain `when` end (`when` if they do not)."""
        if not self.contains(when):
            return when
        local = datetime.fromtimestamp(when, self.tz)
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=self.end.second, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        return end.timestamp()


def parse_window(value: str) -> tuple[time, time]:
    match = _WINDOW.match(value)
    if not match:
        raise ValueError('expected a time window such as "22:00-07:00" (24-hour clock, the bot\'s time zone)')
    h1, m1, s1, h2, m2, s2 = match.groups()
    start, end = time(int(h1), int(m1), int(s1 or 0)), time(int(h2), int(m2), int(s2 or 0))
    if start == end:
        raise ValueError("the quiet hours start and end at the same time; leave quiet_hours out for none")
    return start, end


@config_section("alerts")
class AlertSettings(Model):
    """[alerts]: who an alert of each severity mentions and how often it repeats; the quiet hours."""
    model_config = ConfigDict(extra="forbid")
    quiet_hours: str = Field(
        "", examples=["22:00-07:00"],
        description="Hours (the bot's time zone) during which info and warning alerts are held and posted "
                    "once when they end, if they still hold; critical alerts always go out at once. Empty: "
                    "no quiet hours.")
    info: InfoPolicy = Field(default_factory=InfoPolicy, description="Alerts for information.")
    warning: SeverityPolicy = Field(default_factory=SeverityPolicy, description="Alerts that need attention soon.")
    critical: CriticalPolicy = Field(default_factory=CriticalPolicy, description="Alerts that need attention now.")

    @field_validator("quiet_hours")
    @classmethod
    def _window(cls, value: str) -> str:
        if value.strip():
            parse_window(value)
        return value.strip()

    def policy(self, severity: str) -> SeverityPolicy:
        return getattr(self, severity)

    def quiet(self, tz: str) -> QuietHours | None:
        return QuietHours(*parse_window(self.quiet_hours), tz) if self.quiet_hours else None
