"""!help by group: every shipped command names one of the groups, so the overview stays a few lines."""
from spbot.commands import load_all
from spbot.commands.help import GROUPS, _short_names
from spbot.registry import REGISTRY


def test_every_command_declares_a_known_group():
    load_all()
    visible = REGISTRY.visible()
    assert visible
    assert {s.name: s.group for s in visible if s.group not in GROUPS or s.group == "other"} == {}


def test_the_overview_is_one_short_line_per_group():
    load_all()
    lines = [_short_names([s for s in REGISTRY.visible() if s.group == key]) for key in GROUPS]
    assert "backup (drill, forget, list, now, prune, restore, setup, stats)" in lines
    assert sum(len(line) for line in lines) < 600
