"""The sync position going back (spbot/timeline.py): read from Synapse's tokens only."""
from spbot.timeline import went_back


def test_a_synapse_position_below_the_one_asked_from_went_back():
    assert went_back("s31_1_0_1_1_1_1_5_0_1_1_1_1_1", "s11_1_0_1_1_1_1_5_0_1_1_1_1_1")
    assert went_back("s31", "s30")


def test_the_same_or_a_later_position_did_not():
    assert not went_back("s11_1_0_1", "s11_2_0_1")
    assert not went_back("s11_1_0_1", "s12_1_0_1")


def test_no_position_or_another_homeserver_s_token_is_never_taken_for_going_back():
    assert not went_back(None, "s11_1")
    assert not went_back("s31_1", None)
    assert not went_back("m31~1.40_1_0", "m11~1.12_1_0")        # Synapse with stream writers
    assert not went_back("opaque-token-2", "opaque-token-1")
