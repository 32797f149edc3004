"""The sync position going back (spbot/timeline.py): read from Synapse's tokens only; the question asked
before a sync resumes, so that the homeserver keeps the room keys sent to the bot since; and the bot's
own one-time keys claimed from a homeserver that went back (spbot/homeserver_restored.py)."""
from types import SimpleNamespace
from urllib.parse import parse_qs, urlparse

from spbot.homeserver_restored import claim_own_one_time_keys, position_to_resume
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
    async def refused(method, path, data=None):
        return PositionAnswer("s1", status=401)

    async def never(method, path, data=None):
        raise AssertionError("asked")
    assert not await homeserver_behind(client_of(refused), "s31_1_0")
    assert not await homeserver_behind(client_of(never), None)
    assert not await homeserver_behind(client_of(never), "opaque-token-2")



class OneTimeKeys:
    """A homeserver's /keys/claim for the bot's own device: `left` one-time keys, then its fallback key."""

    def __init__(self, left: int, device: str = "BOTDEVICE", user: str = "@bot:localhost"):
        self.left, self.device, self.user, self.claims = left, device, user, 0

    async def send(self, method, path, data=None):
        assert method == "POST" and "/keys/claim" in path and self.device in data
        self.claims += 1
        fallback = self.left == 0
        self.left = max(0, self.left - 1)
        key = {"key": "abc", "signatures": {}, **({"fallback": True} if fallback else {})}
        return Answer({"one_time_keys": {self.user: {self.device: {f"signed_curve25519:K{self.claims}": key}}}})


class Answer(PositionAnswer):
    def __init__(self, body: dict, status: int = 200):
        super().__init__("", status)
        self.body = body

    async def json(self) -> dict:
        return self.body


async def test_the_bots_own_one_time_keys_are_claimed_until_the_fallback_key_answers():
    server = OneTimeKeys(left=37)
    client = SimpleNamespace(access_token="syt_fake_token", user_id="@bot:localhost", device_id="BOTDEVICE",
                             send=server.send)
    assert await claim_own_one_time_keys(client) == 37
    assert server.left == 0 and server.claims == 38            # the 38th answer was the fallback key


async def test_a_homeserver_behind_is_resumed_from_no_position_with_its_keys_claimed():
    server = OneTimeKeys(left=3)

    async def send(method, path, data=None):
        return await (homeserver_at("s11_1_0")(method, path) if "/sync" in path else server.send(method, path, data))
    client = SimpleNamespace(access_token="syt_fake_token", user_id="@bot:localhost", device_id="BOTDEVICE",
                             send=send)
    assert await position_to_resume(client, "s31_1_0") is None and server.left == 0
    assert await position_to_resume(client, "s11_1_0") == "s11_1_0" and server.claims == 4


async def test_a_refused_claim_ends_the_claiming_and_the_sync_goes_on():
    server = OneTimeKeys(left=5)

    async def refusing_after_two(method, path, data=None):
        return Answer({}, status=403) if server.claims == 2 else await server.send(method, path, data)
    client = SimpleNamespace(access_token="syt_fake_token", user_id="@bot:localhost", device_id="BOTDEVICE",
                             send=refusing_after_two)
    assert await claim_own_one_time_keys(client) == 2 and server.left == 3

