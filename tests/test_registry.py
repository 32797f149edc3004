"""Command declarations: typed arguments, options, usage lines, suggestions. No Matrix needed."""
from pathlib import Path
from typing import Literal

import pytest

from spbot.registry import ArgError, Registry, command, invoke, split_words

registry = Registry()


@command("user add", help="add an account", registry=registry)
async def user_add(ctx, name: str, *, admin: bool = False, display: str | None = None):
    return (name, admin, display)


@command("backup now", help="back up", registry=registry, locks={"system"})
async def backup_now(ctx, *services: str):
    return services


@command("disk", help="disks", registry=registry)
async def disk(ctx, mount: Path | None = None, days: int = 7, mode: Literal["short", "long"] = "short"):
    return (mount, days, mode)


@command("upgrade", help="upgrade", registry=registry, dangerous=True)
async def upgrade(ctx):
    return None


def parse(text: str):
    spec, rest = registry.find(split_words(text))
    return spec, spec.parse(rest)


async def test_options_and_quotes():
    spec, args = parse('user add alice --admin --display "Alice Liddell"')
    assert spec.name == "user add"
    assert await invoke(spec, None, args) == ("alice", True, "Alice Liddell")


async def test_rest_arguments():
    spec, args = parse("backup now mail photos")
    assert await invoke(spec, None, args) == ("mail", "photos")


def test_typed_positionals_and_defaults():
    _, args = parse("disk /srv 30 long")
    assert args == {"mount": Path("/srv"), "days": 30, "mode": "long"}
    _, args = parse("disk")
    assert args == {"mount": None, "days": 7, "mode": "short"}


@pytest.mark.parametrize("text, message", [
    ("user add", "missing <name>"),
    ("user add alice --root", "unknown option --root (options: --admin, --display)"),
    ("user add alice --display", "--display needs a value"),
    ("disk /srv soon", "<days> must be a whole number, not 'soon'"),
    ("disk / 3 huge", "<mode> must be one of short, long, not 'huge'"),
    ("disk / 3 long extra", "too many arguments: 'extra'"),
])
def test_bad_arguments_say_what_is_wrong(text, message):
    spec, rest = registry.find(split_words(text))
    with pytest.raises(ArgError) as error:
        spec.parse(rest)
    assert str(error.value) == message


def test_double_dash_keeps_values_from_becoming_options():
    _, args = parse("user add -- --admin")
    assert args["name"] == "--admin" and args["admin"] is False


def test_unbalanced_quotes_are_a_clear_error():
    with pytest.raises(ArgError, match="check your quotes"):
        split_words('user add "alice')


def test_usage_lines():
    assert registry.commands["user add"].usage() == "!user add <name> [--admin] [--display DISPLAY]"
    assert registry.commands["backup now"].usage() == "!backup now [services…]"
    assert registry.commands["disk"].usage() == "!disk [mount] [days] [mode]"


def test_declaration_defaults():
    assert registry.commands["upgrade"].policy.approvals == 1 and registry.commands["upgrade"].job
    assert registry.commands["backup now"].job and not registry.commands["backup now"].policy.needs_request
    assert not registry.commands["disk"].job


def test_groups_and_suggestions():
    assert [c.name for c in registry.group("user")] == ["user add"]
    assert registry.suggest(["dsk"]) == ["disk"]
    assert registry.suggest(["upgarde"]) == ["upgrade"]


def test_declaring_twice_is_an_error():
    with pytest.raises(ValueError):
        command("disk", help="again", registry=registry)(disk)
