"""The sync position going back (spbot/timeline.py): read from Synapse's tokens only; and the question
asked before a sync resumes, so that the homeserver keeps the room keys sent to the bot since."""
from types import SimpleNamespace
from urllib.parse import parse_qs, urlparse

from spbot.timeline import homeserver_behind, went_back

from .pipeline_kit import PositionAnswer, homeserver_at


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


def client_of(send) -> SimpleNamespace:
    return SimpleNamespace(access_token="syt_fake_token", send=send)


async def test_a_homeserver_behind_the_position_is_told_by_a_sync_from_no_position():
    asked = []
    assert await homeserver_behind(client_of(homeserver_at("s11_1_0", asked)), "s31_1_0")
    query = parse_qs(urlparse(asked[0]).query)
    assert urlparse(asked[0]).path.endswith("/sync") and "since" not in query      # acknowledges nothing
    assert query["timeout"] == ["0"] and '"rooms":[]' in query["filter"][0]


async def test_a_homeserver_at_or_past_the_position_is_not_behind():
    assert not await homeserver_behind(client_of(homeserver_at("s31_1_0")), "s31_1_0")
    assert not await homeserver_behind(client_of(homeserver_at("s40_1_0")), "s31_1_0")


async def test_a_refused_question_is_left_to_the_sync_and_no_position_or_another_token_is_not_asked():
    async def refused(method, path):
        return PositionAnswer("s1", status=401)

    async def never(method, path):
        raise AssertionError("asked")
    assert not await homeserver_behind(client_of(refused), "s31_1_0")
    assert not await homeserver_behind(client_of(never), None)
    assert not await homeserver_behind(client_of(never), "opaque-token-2")

