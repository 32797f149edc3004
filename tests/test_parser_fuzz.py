"""Fuzzing the command parser in-process (hypothesis, a few thousand inputs, seconds): the splitter,
every argument converter and every declared command's `parse` give a parsed result or a clear ArgError,
never another exception, and what they accept is within bounds. bench/fuzz_commands.py runs 100,000+.
"""
from __future__ import annotations

import math
import shlex
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spbot import commands
from spbot.registry import (DEFAULT_MAX_LENGTH, MAX_PATH_LENGTH, REGISTRY, ArgError,
                            CommandSpec, Param, _base_type, _convert, split_words)

commands.load_all()
SPECS = sorted(REGISTRY.commands.values(), key=lambda s: s.name)
FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Words that have broken parsers before: huge and odd numbers, NULs, quotes, long tokens.
HOSTILE = ["99999999999999999999", "-1", "-0", "0", "1e999", "nan", "inf", "-inf", "1_000", "٣", "１２",
           "99999999999d", "1e308d", "never", "7d", "0.5h", "\x00", "a\x00b", "/", "/srv/\x00", "--",
           "--admin", "--admin=yes", "--expires", "--uses=5", "-x", "'", '"', "\\", "x" * 5000,
           "/" + "a" * 2000, "é" * 3000, "b2", "init", "check", "24h", "SHA256:abc"]


def words_for(spec: CommandSpec):
    """Word lists built from this command's own flags and choices plus hostile and random words."""
    own = [p.flag for p in spec.params if p.kind == "option"]
    own += [str(c) for p in spec.params if typing.get_origin(_base_type(p.type)) is typing.Literal
            for c in typing.get_args(_base_type(p.type))]
    word = st.one_of(st.sampled_from(HOSTILE + own + ["--"]), st.text(max_size=30),
                     st.integers().map(str), st.floats().map(repr))
    return st.lists(word, max_size=8)


def assert_bounded(spec: CommandSpec, values: dict) -> None:
    for param in spec.params:
        value = values[param.name]
        for item in (value if param.kind == "rest" else [value]):
            assert_value_bounded(param, item)


def assert_value_bounded(param: Param, value) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        assert 0 <= value <= (param.max if param.max is not None else 1_000_000_000)
    elif isinstance(value, float):
        assert math.isfinite(value)
    elif isinstance(value, Path):
        assert len(str(value)) <= MAX_PATH_LENGTH and "\x00" not in str(value)
    elif isinstance(value, str):
        assert len(value) <= (param.max_length or DEFAULT_MAX_LENGTH) and "\x00" not in value


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
@FUZZ
@given(data=st.data())
def test_every_command_parses_or_says_why(spec, data):
    words = data.draw(words_for(spec))
    try:
        values = spec.parse(words)
    except ArgError as exc:
        assert str(exc) and len(str(exc)) < 400, "a clear, short error that does not echo the input"
        return
    assert_bounded(spec, values)
    policy = spec.policy_for(values)
    assert policy.approvals >= spec.policy.approvals, "policy_when never makes a command less guarded"


PARAMS = [(spec, p) for spec in SPECS for p in spec.params]


@pytest.mark.parametrize("spec, param", PARAMS, ids=[f"{s.name}:{p.name}" for s, p in PARAMS])
@settings(max_examples=30, deadline=None, database=None)
@given(word=st.one_of(st.sampled_from(HOSTILE), st.text(), st.text(max_size=20).map(lambda t: t * 300)))
def test_every_converter_converts_or_says_why(spec, param, word):
    try:
        value = _convert(param, word)
    except ArgError as exc:
        assert len(str(exc)) < 400
        return
    assert_value_bounded(param, value)


@settings(max_examples=1500, deadline=None, database=None)
@given(st.text(alphabet=st.sampled_from(list(" \t\n'\"\\ab-é\x00")), max_size=40))
def test_splitter_reads_like_a_posix_shell(text):
    """The linear splitter gives shlex's words, and an ArgError where shlex gives a ValueError."""
    try:
        expected = shlex.split(text) if "\x00" not in text else None
    except ValueError:
        expected = None
    try:
        got = split_words(text)
    except ArgError as exc:
        assert expected is None, f"{text!r}: shlex reads {expected}, we refused: {exc}"
        return
    assert got == expected


@settings(max_examples=300, deadline=None, database=None)
@given(st.one_of(st.text(max_size=200), st.text(max_size=40).map(lambda t: t * 120)))
def test_splitter_takes_any_line(text):
    try:
        words = split_words(text)
    except ArgError as exc:
        assert len(str(exc)) < 200
        return
    assert all("\x00" not in w for w in words)


def test_a_line_over_the_limit_is_refused_without_echo():
    line = "disk " + "x" * 20_000
    with pytest.raises(ArgError) as error:
        split_words(line)
    assert "20,005 characters long; the limit is 4,096" in str(error.value)
    assert "xxxxxxxxxx" not in str(error.value)
