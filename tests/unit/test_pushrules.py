"""The push rule evaluator of tests/pushrules.py on the spec's own rules, as fixed examples (the chat test
tests/test_ringing_chat.py checks it against Synapse's evaluation)."""
from __future__ import annotations

from tests.pushrules import Room, condition_holds, evaluate, lookup, split_key

ME = "@bob:example.org"
ROOM = Room("!r:example.org", member_count=4, display_name="Bob", power_levels={"users": {"@a:x": 100}})
RULES = {
    "override": [
        {"rule_id": ".m.rule.master", "enabled": False, "conditions": [], "actions": []},
        {"rule_id": ".m.rule.suppress_notices", "enabled": True, "actions": [],
         "conditions": [{"kind": "event_match", "key": "content.msgtype", "pattern": "m.notice"}]},
        {"rule_id": ".m.rule.is_user_mention", "enabled": True,
         "conditions": [{"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids", "value": ME}],
         "actions": ["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}]},
        {"rule_id": ".m.rule.contains_display_name", "enabled": True,
         "conditions": [{"kind": "contains_display_name"}],
         "actions": ["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}]},
        {"rule_id": ".m.rule.suppress_edits", "enabled": True, "actions": [],
         "conditions": [{"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type", "value": "m.replace"}]},
    ],
    "underride": [
        {"rule_id": ".m.rule.message", "enabled": True, "actions": ["notify", {"set_tweak": "highlight", "value": False}],
         "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.room.message"}]},
    ],
}


def message(content: dict) -> dict:
    return {"type": "m.room.message", "sender": "@a:x", "room_id": ROOM.room_id, "content": content}


def test_keys_with_escaped_dots():
    assert split_key("content.m\\.mentions.user_ids") == ["content", "m.mentions", "user_ids"]
    assert split_key("a\\\\.b") == ["a\\", "b"]
    assert lookup({"content": {"m.mentions": {"user_ids": [ME]}}}, "content.m\\.mentions.user_ids") == [ME]


def test_a_mention_rings_a_notice_never_does_and_an_edit_is_quiet():
    mention = {"msgtype": "m.text", "body": "bob: disk", "m.mentions": {"user_ids": [ME]}}
    verdict = evaluate(RULES, message(mention), ROOM)
    assert (verdict.rule_id, verdict.notify, verdict.highlight, verdict.sound) == \
        (".m.rule.is_user_mention", True, True, "default")
    assert not evaluate(RULES, message({**mention, "msgtype": "m.notice"}), ROOM).notify
    edit = {**mention, "m.mentions": {}, "m.relates_to": {"rel_type": "m.replace", "event_id": "$e"}}
    assert evaluate(RULES, message(edit), ROOM).rule_id == ".m.rule.suppress_edits"


def test_legacy_display_name_rule_only_without_m_mentions():
    assert evaluate(RULES, message({"msgtype": "m.text", "body": "hi Bob!"}), ROOM).highlight
    with_mentions = evaluate(RULES, message({"msgtype": "m.text", "body": "hi Bob!", "m.mentions": {}}), ROOM)
    assert with_mentions.rule_id == ".m.rule.message" and not with_mentions.highlight
    assert not evaluate(RULES, message({"msgtype": "m.text", "body": "Bobby"}), ROOM).highlight


def test_conditions_as_the_spec_defines_them():
    event = message({"msgtype": "m.text", "body": "Hello World", "n": 1, "flag": True})
    assert condition_holds({"kind": "event_match", "key": "content.body", "pattern": "world"}, event, ROOM)
    assert not condition_holds({"kind": "event_match", "key": "content.msgtype", "pattern": "m"}, event, ROOM)
    assert condition_holds({"kind": "event_match", "key": "content.msgtype", "pattern": "m.t?x*"}, event, ROOM)
    assert not condition_holds({"kind": "event_match", "key": "content.n", "pattern": "1"}, event, ROOM)
    assert condition_holds({"kind": "event_property_is", "key": "content.flag", "value": True}, event, ROOM)
    assert not condition_holds({"kind": "event_property_is", "key": "content.n", "value": True}, event, ROOM)
    assert condition_holds({"kind": "room_member_count", "is": ">2"}, event, ROOM)
    assert not condition_holds({"kind": "room_member_count", "is": "2"}, event, ROOM)
    assert condition_holds({"kind": "sender_notification_permission", "key": "room"}, event, ROOM)
    assert not condition_holds({"kind": "no_such_kind"}, event, ROOM)
