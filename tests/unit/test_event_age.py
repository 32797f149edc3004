"""spbot/event_age.py: an event's age as the homeserver served it, read defensively (the homeserver's
JSON is outside input)."""
from __future__ import annotations

import pytest

from spbot.event_age import sent_at, sent_at_or_stamp


def test_the_age_counts_back_from_now():
    assert sent_at({"unsigned": {"age": 1500}}, now=1000.0) == 998.5


@pytest.mark.parametrize("source", [{}, {"unsigned": None}, {"unsigned": []}, {"unsigned": {}},
                                    {"unsigned": {"age": "5"}}, {"unsigned": {"age": True}},
                                    {"unsigned": {"age": -1}}, {"unsigned": {"age": None}}])
def test_no_usable_age_falls_back_to_the_timestamp(source):
    assert sent_at(source, now=1000.0) is None
    assert sent_at_or_stamp(source, 900_000, now=1000.0) == 900.0
