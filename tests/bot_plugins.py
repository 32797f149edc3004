"""Test-only commands, loaded by the test bot through `plugins = ["tests.bot_plugins"]`."""
import asyncio
import os
from pathlib import Path

from spbot.context import Context
from spbot.registry import NO_APPROVAL, Policy, command
from spbot.render import Reply
from spbot.system.proc import run


def _marks(ctx: Context) -> Path:
    return ctx.config.state_dir / "marks.txt"


@command("mark", help="test: append a token to state_dir/marks.txt (counts how often a command ran)",
         hidden=True)
async def mark(ctx: Context, token: str) -> Reply:
    with open(_marks(ctx), "a") as fh:
        fh.write(token + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return Reply.text(f"marked {token}")


@command("sleep", help="test: a slow command backed by a real `sleep` process", hidden=True)
async def sleep(ctx: Context, seconds: float, token: str = "") -> Reply:
    if token:
        (ctx.config.state_dir / f"started-{token}").write_text("1")
    result = await run(["sleep", str(seconds)], timeout=seconds + 30)
    return Reply.text(f"slept {seconds:g}s (exit {result.returncode})")


@command("boom", help="test: a command that crashes", hidden=True)
async def boom(ctx: Context) -> Reply:
    await asyncio.sleep(0)
    raise RuntimeError("kaboom with secret-ish detail")


@command("danger", help="test: a dangerous command (needs one other admin) that marks a token",
         dangerous=True, hidden=True)
async def danger(ctx: Context, token: str) -> Reply:
    with open(_marks(ctx), "a") as fh:
        fh.write(token + "\n")
    return Reply.text(f"danger done {token}")


@command("danger-slow", help="test: a long dangerous job with progress, backed by a real process",
         dangerous=True, locks={"system"}, hidden=True)
async def danger_slow(ctx: Context, seconds: int, token: str = "") -> Reply:
    if token:
        (ctx.config.state_dir / f"started-{token}").write_text(str(os.getpid()))
    for i in range(seconds):
        await ctx.job.progress(f"step {i + 1} of {seconds}", fraction=i / seconds)
        result = await run(["sleep", "1"], timeout=30)
        del result
    if token:
        with open(_marks(ctx), "a") as fh:
            fh.write(token + "\n")
    return Reply.text(f"slow danger done {token}")


@command("locked-sleep", help="test: a job holding the system lock, with no approval",
         locks={"system"}, hidden=True, policy=NO_APPROVAL)
async def locked_sleep(ctx: Context, seconds: float, token: str = "") -> Reply:
    if token:
        (ctx.config.state_dir / f"started-{token}").write_text("1")
    await run(["sleep", str(seconds)], timeout=seconds + 30)
    return Reply.text(f"locked sleep done {token}")


@command("expiring", help="test: a dangerous command whose request expires after 4 s",
         dangerous=True, hidden=True, policy=Policy(approvals=1, expires=4))
async def expiring(ctx: Context, token: str) -> Reply:
    with open(_marks(ctx), "a") as fh:
        fh.write(token + "\n")
    return Reply.text(f"expiring done {token}")


@command("danger-two", help="test: dangerous, two approvals via [policies] in the test config",
         dangerous=True, hidden=True)
async def danger_two(ctx: Context, token: str) -> Reply:
    with open(_marks(ctx), "a") as fh:
        fh.write(token + "\n")
    return Reply.text(f"danger-two done {token}")


@command("alert-offer", help="test: fire an alert that offers `!danger <token>` to a ✅", hidden=True)
async def alert_offer(ctx: Context, token: str) -> Reply:
    await ctx.bot.alerts.fire(f"test:{token}", "warning", f"test condition {token}",
                              todo="nothing else", offer=f"!danger {token}")
    return Reply.text("alert posted")


@command("burst", help="test: the bot says `n` numbered notices (a backlog for a client to catch up on)",
         hidden=True)
async def burst(ctx: Context, n: int, token: str) -> Reply:
    for i in range(n):
        await ctx.bot.outbox.send(ctx.request.room_id, Reply.text(f"burst {token} {i}").content())
    return Reply.text(f"burst {token} queued")


@command("mark-slow", help="test: mark a token, then take a while before answering", hidden=True)
async def mark_slow(ctx: Context, token: str, seconds: float = 1.0) -> Reply:
    with open(_marks(ctx), "a") as fh:
        fh.write(token + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    await asyncio.sleep(seconds)
    return Reply.text(f"marked {token}")


@command("big", help="test: an answer of about `kb` KB (more than one Matrix event can hold)",
         hidden=True)
async def big(ctx: Context, kb: int) -> Reply:
    lines = [f"line {n:05d} of a very long answer" for n in range(kb * 1024 // 32 + 1)]
    return Reply.text("\n".join(lines))


@command("say-in", help="test: queue a message to any room (one the bot may not be in)", hidden=True)
async def say_in(ctx: Context, room: str, text: str) -> Reply:
    await ctx.bot.outbox.send(room, Reply.text(text).content())
    return Reply.text(f"queued for {room}")


@command("oversize-relation", help="test: a reply whose relation (sent in the clear beside the "
         "ciphertext) makes the event too large for the homeserver", hidden=True)
async def oversize_relation(ctx: Context) -> Reply:
    content = Reply.text("an answer with a huge relation").content()
    content["m.relates_to"] = {"m.in_reply_to": {"event_id": ctx.request.event_id},
                               "org.spbot.test.padding": "p" * 30_000}
    await ctx.bot.outbox.send(ctx.request.room_id, content)
    return Reply.text("oversize queued")


@command("note", help="test: keep a word in a table of its own (one that only this command reads or writes)",
         hidden=True)
async def note(ctx: Context, word: str) -> Reply:
    await ctx.store.ensure_schema("CREATE TABLE IF NOT EXISTS test_notes (word TEXT NOT NULL);")
    await ctx.store.execute("INSERT INTO test_notes(word) VALUES(?)", (word,))
    row = await ctx.store.fetchone("SELECT COUNT(*) AS n FROM test_notes")
    return Reply.text(f"noted {word} ({row['n']} in all)")


@command("unreadable", help="test: the bot's syncs fail for SECONDS as a bug in reading them would (a "
         "non-network error); it tells the admins after 2 s instead of 2 minutes", hidden=True)
async def unreadable(ctx: Context, seconds: float) -> Reply:
    import time

    from spbot import stuck_reading
    stuck_reading.STUCK_AFTER = 2.0
    client = ctx.bot.connection.client
    real, until = client.sync, time.monotonic() + seconds

    async def failing_sync(*args, **kwargs):
        if time.monotonic() < until:
            raise ValueError("a bug while reading the sync (test)")
        client.sync = real
        return await real(*args, **kwargs)
    client.sync = failing_sync
    return Reply.text(f"reading fails for {seconds:g} s")

