"""What a Matrix client does with an event once it has decrypted it: the push rules evaluated as the
client-server spec says (Push Notifications module, v1.7 and later), on a user's own rule set as the
homeserver serves it (GET /_matrix/client/v3/pushrules/). In an encrypted room the server sees only
m.room.encrypted; the phone's decision to ring is this evaluation on the decrypted event.

Kinds in order override → content → room → sender → underride; the first enabled rule whose conditions
all hold decides. Conditions: event_match (glob on a dotted key, `\\.` for a dot inside a key, whole value,
except content.body where the pattern matches at word boundaries; strings only, case-insensitive),
event_property_is, event_property_contains, contains_display_name, room_member_count,
sender_notification_permission. With an `m.mentions` property in the content the legacy mention rules
(.m.rule.contains_display_name, .m.rule.contains_user_name, .m.rule.roomnotif) are skipped (v1.7)."""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

KINDS = ("override", "content", "room", "sender", "underride")
LEGACY_MENTION_RULES = {".m.rule.contains_display_name", ".m.rule.contains_user_name", ".m.rule.roomnotif"}
_MISSING = object()


@dataclass
class Room:
    """What the conditions need to know about the room and the user the rules belong to."""
    room_id: str
    member_count: int
    display_name: str | None = None
    power_levels: dict = field(default_factory=dict)


@dataclass
class Verdict:
    rule_id: str | None
    notify: bool
    highlight: bool
    sound: str | None

    @classmethod
    def from_actions(cls, rule_id: str | None, actions: list) -> "Verdict":
        notify, highlight, sound = False, False, None
        for action in actions:
            if action == "notify":
                notify = True
            elif isinstance(action, dict) and action.get("set_tweak") == "highlight":
                highlight = action.get("value", True) is True
            elif isinstance(action, dict) and action.get("set_tweak") == "sound":
                sound = action.get("value")
        return cls(rule_id, notify, notify and highlight, sound if notify else None)


def split_key(key: str) -> list[str]:
    """`content.m\\.mentions.user_ids` → ["content", "m.mentions", "user_ids"]."""
    parts, current, escaped = [], [], False
    for char in key:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def lookup(event: dict, key: str) -> Any:
    value: Any = event
    for part in split_key(key):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _glob(pattern: str) -> str:
    return fnmatch.translate(pattern.lower()).removeprefix("(?s:").removesuffix(")\\Z")


def glob_matches(pattern: str, value: str, words: bool) -> bool:
    if words:   # anywhere in the value, between word boundaries (start/end or a non-word character)
        return re.search(rf"(?:^|\W)(?:{_glob(pattern)})(?:\W|$)", value.lower(), re.S) is not None
    return re.fullmatch(_glob(pattern), value.lower(), re.S) is not None


def _member_count(spec: str, count: int) -> bool:
    match = re.fullmatch(r"(==|<=|>=|<|>)?([0-9]+)", spec)
    if not match:
        return False
    op, number = match.group(1) or "==", int(match.group(2))
    return {"==": count == number, "<": count < number, ">": count > number,
            "<=": count <= number, ">=": count >= number}[op]


def condition_holds(condition: dict, event: dict, room: Room) -> bool:
    kind = condition.get("kind")
    if kind == "event_match":
        value = lookup(event, condition["key"])
        return isinstance(value, str) and glob_matches(condition["pattern"], value,
                                                       words=condition["key"] == "content.body")
    if kind == "event_property_is":
        value = lookup(event, condition["key"])
        expected = condition["value"]
        return value is not _MISSING and type(value) is type(expected) and value == expected
    if kind == "event_property_contains":
        value = lookup(event, condition["key"])
        expected = condition["value"]
        return isinstance(value, list) and any(type(v) is type(expected) and v == expected for v in value)
    if kind == "contains_display_name":
        body = lookup(event, "content.body")
        return bool(room.display_name) and isinstance(body, str) and \
            re.search(rf"(?:^|\W){re.escape(room.display_name.lower())}(?:\W|$)", body.lower()) is not None
    if kind == "room_member_count":
        return _member_count(condition.get("is", ""), room.member_count)
    if kind == "sender_notification_permission":
        levels = room.power_levels
        needed = (levels.get("notifications") or {}).get(condition["key"], 50)
        have = (levels.get("users") or {}).get(event["sender"], levels.get("users_default", 0))
        return have >= needed
    return False                      # an unknown condition never matches (spec)


def _conditions(kind: str, rule: dict) -> list[dict]:
    if kind == "content":
        return [{"kind": "event_match", "key": "content.body", "pattern": rule["pattern"]}]
    if kind == "room":
        return [{"kind": "event_match", "key": "room_id", "pattern": rule["rule_id"]}]
    if kind == "sender":
        return [{"kind": "event_match", "key": "sender", "pattern": rule["rule_id"]}]
    return rule.get("conditions") or []


def evaluate(rules: dict, event: dict, room: Room) -> Verdict:
    """The first matching rule's actions for this (decrypted) event; `rules` is the `global` rule set."""
    mentions = "m.mentions" in (event.get("content") or {})
    for kind in KINDS:
        for rule in rules.get(kind) or []:
            if not rule.get("enabled", True):
                continue
            if mentions and rule["rule_id"] in LEGACY_MENTION_RULES:
                continue
            if all(condition_holds(c, event, room) for c in _conditions(kind, rule)):
                return Verdict.from_actions(rule["rule_id"], rule.get("actions") or [])
    return Verdict(None, False, False, None)
