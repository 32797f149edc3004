"""!ping: is the bot there, and how long did the command take to reach it."""
import time

from spbot.context import Context
from spbot.registry import command
from spbot.render import Reply


@command("ping", group="core", help="check that the bot answers, with the time your command took to reach it")
async def ping(ctx: Context) -> Reply:
    delay_ms = max(0, int(time.time() * 1000) - ctx.request.sent_ts_ms)
    return Reply.text(f"pong ({delay_ms} ms since you sent it)")
