"""The chat client (the console's and the tests') keeps its sync position on disk for its next start: at
most every POSITION_EVERY seconds while it syncs, and always when it stops."""
from spbot import chatclient
from spbot.chatclient import POSITION_EVERY, ChatClient


async def test_the_position_is_saved_at_most_every_few_seconds_and_at_stop(tmp_path, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(chatclient.time, "monotonic", lambda: now[0])
    client = ChatClient("http://127.0.0.1:1", "@alice:localhost", "pw", tmp_path)
    saved = tmp_path / "sync_position"

    client._since = "s1"
    client._save_position()
    assert saved.read_text() == "s1"
    client._since = "s2"
    now[0] += POSITION_EVERY / 2
    client._save_position()
    assert saved.read_text() == "s1"                 # too soon: a sync a second must not write each time
    now[0] += POSITION_EVERY
    client._save_position()
    assert saved.read_text() == "s2"
    client._since = "s3"
    await client.stop()
    assert saved.read_text() == "s3"                 # the last position is never lost at a stop
