"""What a command declaration promises, checked when it is declared (spbot/declaration_checks.py), and a
secret argument through the approval path on a real store and outbox: an approval request neither
stores nor shows it, and the approved command still gets it."""
from __future__ import annotations

import json
from typing import Annotated

import pytest

from spbot import commands
from spbot.approvals import Approvals
from spbot.declaration_checks import DeclarationError
from spbot.features.common import tolerant_preview
from spbot.logs import redact
from spbot.registry import Arg, Policy, Registry, command, split_words

from .pipeline_kit import ALICE, BOB, ROOM, Parts, request, until_sent

KEY = "K005-secret-application-key-4711"
TOKEN = "tok en'with quotes"
Key = Annotated[str, Arg(secret=True, help="the application key")]


def test_every_command_of_the_product_is_declared_rightly():
    commands.load_all()                    # each declaration ran its checks at import


def test_a_preview_that_does_not_take_the_commands_arguments_fails_when_declared():
    async def grow_preview(host, volume: str) -> str:          # the command says `mount`
        return ""

    with pytest.raises(DeclarationError, match=r"!volume grow: its preview .*grow_preview does not take "
                                               r"the command's arguments \(mount, size\)"):
        @command("volume grow", help="x", preview=grow_preview, registry=Registry())
        async def grow(ctx, mount: str, size: str = "+10") -> None: ...

    async def narrow(host, mount: str) -> str:                 # misses `size`
        return ""
    with pytest.raises(DeclarationError, match=r"\(mount, size\): got an unexpected keyword argument 'size'"):
        command("volume grow", help="x", preview=narrow, registry=Registry())(_grow)


async def _grow(ctx, mount: str, size: str = "+10") -> None: ...


def test_previews_that_take_the_arguments_by_name_or_all_at_once_are_accepted():
    registry = Registry()

    async def by_name(host, mount: str, size: str = "+10", *, force: bool = False) -> str:
        return ""

    async def all_at_once(host, **args) -> str:
        return ""

    @tolerant_preview
    async def wrapped(host, mount: str, size: str, force: bool) -> str:
        return ""
    for i, preview in enumerate((by_name, all_at_once, wrapped)):
        @command(f"grow {i}", help="x", preview=preview, registry=registry)
        async def grow(ctx, mount: str, size: str = "+10", *, force: bool = False) -> None: ...
    assert len(registry.commands) == 3


def test_only_a_single_word_can_be_secret():
    with pytest.raises(DeclarationError, match="the secret argument pin must be one word"):
        @command("lock", help="x", registry=Registry())
        async def lock(ctx, pin: Annotated[int, Arg(secret=True)]) -> None: ...
    with pytest.raises(DeclarationError, match="the secret argument words must be one word"):
        @command("say", help="x", registry=Registry())
        async def say(ctx, *words: Annotated[str, Arg(secret=True)]) -> None: ...


class Started:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def __call__(self, req, spec, args, approvers, request_id):
        self.calls.append((req.text, args))
        return type("Job", (), {"id": 7})()


def key_registry() -> Registry:
    registry = Registry()

    async def preview(host, bucket: str, key: str, token: str | None = None) -> str:
        return f"uses key {key} for bucket {bucket}"           # a careless preview echoes the key

    @command("b2 key", help="store a B2 key", dangerous=True, preview=preview, registry=registry)
    async def b2_key(ctx, bucket: str, key: Key, *, token: Key | None = None) -> None: ...
    return registry


def approvals_on(parts: Parts, registry: Registry, started: Started) -> Approvals:
    async def eligible(requester: str) -> list[str]:
        return [a for a in parts.config.admins if a != requester]

    async def preview(spec, args) -> str:
        return await spec.preview(None, **args)

    async def nothing() -> None:
        return None
    return Approvals(parts.store, parts.messenger, parts.audit, parts.config, registry, start=started,
                     eligible_approvers=eligible, preview=preview, before_vote=nothing, spawn=parts.spawn)


async def open_key_request(parts: Parts, approvals: Approvals, registry: Registry) -> int:
    text = f"!b2 key family-backups {KEY} --token=\"{TOKEN}\""
    spec, rest = registry.find(split_words(text[1:]))
    args = spec.parse(rest)
    assert (args["key"], args["token"]) == (KEY, TOKEN)
    await approvals.open(request(text), spec, args, Policy(approvals=1))
    return (await parts.store.fetchone("SELECT MAX(id) AS id FROM requests"))["id"]


def assert_no_secret(text: str) -> None:
    assert KEY not in text and "tok en" not in text and "quotes" not in text


async def test_an_approval_request_neither_stores_nor_shows_a_secret_argument(tmp_path):
    parts = await Parts(tmp_path).start()
    registry, started = key_registry(), Started()
    try:
        approvals = approvals_on(parts, registry, started)
        await approvals.start()
        rid = await open_key_request(parts, approvals, registry)
        row = dict(await parts.store.fetchone("SELECT * FROM requests WHERE id = ?", (rid,)))
        assert row["text"] == "!b2 key family-backups *** --token=***"
        assert json.loads(row["args"]) == {"bucket": "family-backups", "key": "***", "token": "***"}
        _, _, shown = (await until_sent(parts.connection.client, 1))[0]
        assert shown["body"].startswith(f"🔐 Request #{rid}: {ALICE} wants to run `!b2 key family-backups *** "
                                        "--token=***`\nuses key *** for bucket family-backups\n")
        assert_no_secret(shown["body"] + shown["formatted_body"])
        assert redact(f"log line with {KEY}") == "log line with ***"

        assert await approvals.vote(rid, BOB, True, room_id=ROOM) == f"request #{rid} approved"
        assert started.calls == [("!b2 key family-backups *** --token=***",
                                  {"bucket": "family-backups", "key": KEY, "token": TOKEN})]
        everything = json.dumps([dict(r) for r in await parts.store.fetchall("SELECT * FROM requests")]
                                + await parts.audit_rows()
                                + [c for _, _, c in parts.sent])
        assert_no_secret(everything)
    finally:
        await parts.stop()


async def test_after_a_restart_a_request_whose_secret_is_gone_fails_and_says_to_send_it_again(tmp_path):
    parts = await Parts(tmp_path).start()
    registry, started = key_registry(), Started()
    try:
        rid = await open_key_request(parts, await _started(approvals_on(parts, registry, Started())), registry)
        again = await _started(approvals_on(parts, registry, started))      # the bot restarted
        assert await again.vote(rid, BOB, True, room_id=ROOM) == f"request #{rid} approved"
        row = await parts.store.fetchone("SELECT state, reason FROM requests WHERE id = ?", (rid,))
        assert (row["state"], row["reason"]) == (
            "failed", "Its secret argument is not kept across a restart of the bot: send the command again.")
        assert started.calls == []
    finally:
        await parts.stop()


async def _started(approvals: Approvals) -> Approvals:
    await approvals.start()
    return approvals
