"""`spbot console`: talk to the bot from a terminal, as an admin of the dev stack, over E2EE.

Type commands at the prompt; the bot's replies (and edits of its progress messages) are printed as
they arrive. With stdin from a pipe it sends each line and waits until the command is settled
before sending the next: answered, every job it started finished, and an approval it asked for
decided (approved and run, denied, or expired); or the timeout passed. So
`printf '!backup now\\n' | spbot console` shows the progress and the snapshot ids, then exits."""
from __future__ import annotations

import asyncio
import difflib
import json
import re
import sys
from pathlib import Path

from .chatclient import ChatClient, Seen, quiet_nio

FIRST_ANSWER_WAIT = 30.0
# The head line of a job's message (spbot/jobs.py: "<icon> <title> — job #N"): running or waiting.
_JOB_HEAD = re.compile(r"^(⏳|⏸|✅|❌|🛑|⚠️) .* — job #(\d+)$")
_OPEN_ICONS = ("⏳", "⏸")
# An approval request (spbot/approvals.py) is open while it says how to approve, and while its job
# runs ("approved by …: running as job #N"); its last edit says how it ended.
_REQUEST = re.compile(r"^🔐 Request #(\d+)")
_REQUEST_OPEN = ("Approve: react", ": running as")


def _text(seen: Seen) -> tuple[str | None, str]:
    """(id of the message this edits or None, the text as it now reads)."""
    content = seen.content
    if seen.relates.get("rel_type") == "m.replace":
        return seen.relates.get("event_id"), (content.get("m.new_content") or content).get("body", "")
    return None, content.get("body", "")


class Printer:
    """Prints what others say; an edit prints only its lines that changed (a progress message edited
    every few seconds would otherwise fill the terminal with copies of itself)."""

    def __init__(self, me: str):
        self.me = me
        self.texts: dict[str, str] = {}        # message id -> its text as last printed

    def show(self, seen: Seen) -> None:
        if seen.sender == self.me or not seen.type.startswith("m.room.message"):
            return
        if seen.type == "m.room.encrypted" and not seen.decrypted:
            print(f"[{seen.sender}] (a message this device cannot decrypt)", flush=True)
            return
        edited, body = _text(seen)
        if edited is None:
            self.texts[seen.event_id] = body
            print(f"[{seen.sender}] {body}", flush=True)
            return
        before = self.texts.get(edited)
        self.texts[edited] = body
        changed = body if before is None else "\n".join(_changed_lines(before, body))
        if changed:
            print(f"[{seen.sender}] ✎ {changed}", flush=True)


def _changed_lines(before: str, after: str) -> list[str]:
    old, new = before.splitlines(), after.splitlines()
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    return [line for tag, _, _, j1, j2 in matcher.get_opcodes() if tag in ("replace", "insert")
            for line in new[j1:j2]]


class Tracker:
    """What the bot has said about one command: its replies, their latest text, open jobs/requests."""

    def __init__(self, command_id: str, bot: str):
        self.command_id = command_id
        self.bot = bot
        self.messages: dict[str, str] = {}     # bot message id -> its text now

    def see(self, seen: Seen) -> None:
        if seen.sender != self.bot or not seen.decrypted and seen.type == "m.room.encrypted":
            return
        edited, body = _text(seen)
        if edited is not None:
            if edited in self.messages:
                self.messages[edited] = body
        elif seen.reply_to == self.command_id or seen.reply_to in self.messages:
            self.messages[seen.event_id] = body

    @property
    def answered(self) -> bool:
        return bool(self.messages)

    def open_jobs(self) -> list[str]:
        heads = [_JOB_HEAD.match(text.splitlines()[0]) for text in self.messages.values() if text]
        return [m[2] for m in heads if m and m[1] in _OPEN_ICONS]

    def open_requests(self) -> list[str]:
        return [m[1] for text in self.messages.values()
                if (m := _REQUEST.match(text)) and any(sign in text for sign in _REQUEST_OPEN)]

    def settled(self) -> bool:
        return self.answered and not self.open_jobs() and not self.open_requests()


async def run_console(dev_json: Path | None, user: str | None, timeout: float = 600.0) -> int:
    from .devup import STATE
    quiet_nio()
    dev_json = dev_json or STATE / "dev.json"
    if not dev_json.exists():
        print(f"no {dev_json}: start the dev stack first with deploy/synapse-dev/up", file=sys.stderr)
        return 2
    dev = json.loads(dev_json.read_text())
    admins = [u for u in dev["users"] if u["admin"] and (user is None or u["user_id"] == user)]
    if not admins:
        print(f"{user} is not an admin in {dev_json}", file=sys.stderr)
        return 2
    me = admins[0]
    client = ChatClient(dev["homeserver"], me["user_id"], me["password"],
                        dev_json.parent / "console" / me["user_id"])
    await client.start()
    trackers: list[Tracker] = []
    printer = Printer(me["user_id"])

    def on_event(seen: Seen) -> None:
        printer.show(seen)
        for tracker in trackers:
            tracker.see(seen)

    client.on_event = on_event
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"Logged in as {me['user_id']} (device {client.device_id}) in {dev['room_id']}.\n"
              f"Type !help, or Ctrl-D to leave.", flush=True)
    try:
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            tracker = Tracker(await client.send(dev["room_id"], line), dev["bot_user_id"])
            trackers.append(tracker)
            if not interactive:
                await _settle(tracker, line, timeout)
    finally:
        await client.stop()
    return 0


async def _settle(tracker: Tracker, line: str, timeout: float) -> None:
    """Wait until the command is settled, saying what is still awaited when time runs out."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not tracker.settled():
        waited = loop.time() - start
        if not tracker.answered and waited > min(FIRST_ANSWER_WAIT, timeout):
            print(f"(no answer from the bot to {line!r} within {FIRST_ANSWER_WAIT:.0f}s)", flush=True)
            return
        if waited > timeout:
            jobs, requests = tracker.open_jobs(), tracker.open_requests()
            what = (f"job #{', #'.join(jobs)} still running" if jobs else
                    f"request #{', #'.join(requests)} still waiting for approval")
            print(f"(stopped waiting after {timeout:.0f}s: {what}; see !jobs)", flush=True)
            return
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)   # a result reply sent just before the job's final edit
