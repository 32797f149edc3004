"""Test-only commands, loaded by the test bot through `plugins = ["tests.bot_plugins"]`."""
import asyncio
import os
from pathlib import Path

from spbot.context import Context
from spbot.registry import command
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
