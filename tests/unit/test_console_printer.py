"""The console prints a progress message once and then only what each edit changed."""
from __future__ import annotations

from spbot.chatclient import Seen
from spbot.console import Printer


def message(event_id: str, body: str, edits: str | None = None) -> Seen:
    content = {"msgtype": "m.notice", "body": body}
    if edits:
        content = {"msgtype": "m.notice", "body": f"* {body}", "m.new_content": content,
                   "m.relates_to": {"rel_type": "m.replace", "event_id": edits}}
    return Seen(event_id, "@bot:localhost", "m.room.message", content, True)


def test_an_edit_prints_only_its_changed_lines(capsys):
    printer = Printer("@alice:localhost")
    printer.show(message("$1", "⏳ backup — job #3\nfiles: 10\nstarted 03:00"))
    printer.show(message("$2", "⏳ backup 50% — job #3\nfiles: 10\nstarted 03:00", edits="$1"))
    printer.show(message("$3", "⏳ backup 50% — job #3\nfiles: 10\nstarted 03:00", edits="$1"))
    printer.show(message("$4", "✅ backup done — job #3\nfiles: 10\nstarted 03:00\nsnapshot 1a2b", edits="$1"))
    assert capsys.readouterr().out.splitlines() == [
        "[@bot:localhost] ⏳ backup — job #3", "files: 10", "started 03:00",
        "[@bot:localhost] ✎ ⏳ backup 50% — job #3",
        "[@bot:localhost] ✎ ✅ backup done — job #3", "snapshot 1a2b"]


def test_an_edit_of_a_message_not_seen_prints_whole_and_own_words_are_not_echoed(capsys):
    printer = Printer("@alice:localhost")
    printer.show(message("$9", "✅ done", edits="$0"))
    printer.show(Seen("$8", "@alice:localhost", "m.room.message", {"body": "!ping"}, True))
    assert capsys.readouterr().out.splitlines() == ["[@bot:localhost] ✎ ✅ done"]
