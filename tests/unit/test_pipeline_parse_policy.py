"""The parse step (spbot/parsing.py) and the policy step (spbot/policy.py): a line becomes a command
and typed arguments or the reply saying what is wrong; the config's [policies] replace a declared policy
and a command's `policy_when` can only make it stricter."""
from __future__ import annotations

import logging

from spbot.parsing import first_word, parse_command
from spbot.policy import Policies
from spbot.registry import NO_APPROVAL, Policy, Registry, command
from spbot.render import Reply

from .pipeline_kit import make_config, sample_registry


def test_a_line_becomes_the_command_and_its_typed_arguments():
    spec, args = parse_command('!backup now "my service"', sample_registry(), "!")
    assert (spec.name, args) == ("backup now", {"service": "my service"})
    spec, args = parse_command("%hello you", sample_registry(), "%")
    assert (spec.name, args) == ("hello", {"name": "you"})


def test_what_is_wrong_with_a_line_is_the_reply():
    registry = sample_registry()
    unknown = parse_command("!helo", registry, "!")
    assert isinstance(unknown, Reply) and unknown.body == "⚠️ unknown command !helo\ndid you mean !hello?"
    far = parse_command("!zzzz", registry, "!")
    assert far.body == "⚠️ unknown command !zzzz\nsend !help for the list of commands."
    group = parse_command("!backup", registry, "!")
    assert group.body == "!backup needs one of:\n!backup list — list backups\n!backup now — back up"
    extra = parse_command("!hello a b", registry, "!")
    assert extra.body.startswith("⚠️ ") and extra.body.endswith("\nusage: !hello [name]")
    assert parse_command("!wipe 'open", registry, "!").body.startswith("⚠️ ")
    assert parse_command("! ", registry, "!").body == \
        "⚠️ that is an empty command.\nsend !help for the list of commands."


def test_first_word_is_bounded_for_reports():
    assert first_word("!backup now x", "!") == "backup"
    assert first_word("!", "!") == "?"
    assert len(first_word("!" + "x" * 500, "!")) <= 31


def test_the_config_replaces_a_declared_policy(tmp_path):
    registry = sample_registry()
    policies = Policies(make_config(tmp_path, policies={"wipe": {"approvals": 2, "expires": "10m"},
                                                        "hello": {"approvals": 0, "confirm": True}}),
                        registry)
    assert policies.configured(registry.commands["wipe"]) == Policy(approvals=2, expires=600)
    assert policies.configured(registry.commands["hello"]) == Policy(confirm=True)
    assert policies.configured(registry.commands["backup now"]) == NO_APPROVAL


def test_arguments_can_only_make_a_policy_stricter(tmp_path):
    registry = Registry()

    @command("user add", help="add a user", registry=registry,
             policy_when=lambda args: Policy(approvals=1) if args.get("admin") else None)
    async def user_add(ctx, name: str, *, admin: bool = False) -> Reply:
        return Reply.text(name)

    spec = registry.commands["user add"]
    policies = Policies(make_config(tmp_path), registry)
    assert policies.for_command(spec, {"name": "x", "admin": False}) == NO_APPROVAL
    assert policies.for_command(spec, {"name": "x", "admin": True}).approvals == 1
    loose = Policies(make_config(tmp_path, policies={"user add": {"approvals": 0}}), registry)
    assert loose.for_command(spec, {"name": "x", "admin": True}).approvals == 1


def test_risky_policy_config_is_warned_about_at_start(tmp_path, caplog):
    policies = Policies(make_config(tmp_path, policies={"wipe": {"approvals": 0}, "nosuch": {"approvals": 1}}),
                        sample_registry())
    with caplog.at_level(logging.WARNING, logger="spbot.policy"):
        policies.warn_about_config()
    said = {(r.getMessage(), r.fields.get("command")) for r in caplog.records}
    assert said == {("policy_for_unknown_command", "nosuch"), ("dangerous_command_without_approval", "wipe")}
