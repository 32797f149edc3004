"""The syncs that must see the present carry a filter text no earlier sync had (spbot/timeline.py
`fresh`): Synapse answers a sync asked again within two minutes from a cache. And what an event that
never decrypted is answered with (spbot/late_decryption.py): a vote is told as a reaction that did not
count."""
from __future__ import annotations

import json

from nio import MegolmEvent

from spbot.late_decryption import not_decrypted
from spbot.timeline import POSITION_PROBE, SYNC_FILTER, fresh


def test_each_fresh_filter_has_a_text_of_its_own_and_asks_for_the_same():
    first, second = fresh(SYNC_FILTER), fresh(SYNC_FILTER)
    assert json.dumps(first) != json.dumps(second)
    assert first["room"] == SYNC_FILTER["room"] and "presence" not in SYNC_FILTER     # the original untouched
    probe = fresh(POSITION_PROBE)
    assert probe["presence"]["types"] == [] and probe["room"] == POSITION_PROBE["room"]
    assert all(kind.startswith("spbot.fresh.") for kind in first["presence"]["not_types"])


def undecrypted(content: dict) -> MegolmEvent:
    source = {"type": "m.room.encrypted", "event_id": "$e", "sender": "@bob:localhost", "origin_server_ts": 1,
              "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "x", "sender_key": "k",
                          "session_id": "s", "device_id": "PHONE", **content}}
    return MegolmEvent.from_dict(source)


def test_a_vote_that_never_decrypted_is_told_as_a_reaction_and_a_command_as_a_message():
    vote = not_decrypted(undecrypted({"m.relates_to": {"rel_type": "m.annotation", "event_id": "$r"}}))
    command = not_decrypted(undecrypted({}))
    assert "your reaction (from your device PHONE), so it did not count" in vote.body
    assert "React again" in vote.body
    assert "your message (from your device PHONE), so I did not run it" in command.body
    assert "Send the command again" in command.body
