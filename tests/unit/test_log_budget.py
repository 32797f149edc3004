"""What outsiders can make the bot log at will is bounded (spbot/logs.py Budget): twenty lines a minute
of one kind, the rest counted and said in the next line written."""
from __future__ import annotations

from spbot.logs import Budget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_writes_the_first_lines_then_counts_the_rest_until_the_window_is_up():
    clock = Clock()
    budget = Budget(most=3, window=60, clock=clock)
    assert [budget.take() for _ in range(5)] == [0, 0, 0, None, None]
    clock.now += 59.9
    assert budget.take() is None
    clock.now += 0.1
    assert budget.take() == 3                     # the first line of the next minute counts the left-out
    assert [budget.take() for _ in range(3)] == [0, 0, None]


def test_a_trickle_is_written_whole():
    clock = Clock()
    budget = Budget(most=2, window=60, clock=clock)
    for _ in range(10):
        assert budget.take() == 0
        clock.now += 31
