"""!approve, !deny and !requests: the command side of approval requests (reactions work too)."""
import time

from spbot.context import Context
from spbot.registry import command
from spbot.render import Reply, human_duration, table


@command("approve", help="approve a pending request: !approve <request id>")
async def approve(ctx: Context, request_id: int) -> Reply:
    return Reply.text(await ctx.bot.approvals.vote(request_id, ctx.sender, True,
                                                   event_id=ctx.request.event_id))


@command("deny", help="deny a pending request: !deny <request id> [reason]")
async def deny(ctx: Context, request_id: int, *reason: str) -> Reply:
    return Reply.text(await ctx.bot.approvals.vote(request_id, ctx.sender, False, " ".join(reason),
                                                   event_id=ctx.request.event_id))


@command("requests", help="pending approval requests")
async def requests(ctx: Context) -> Reply:
    rows = await ctx.bot.approvals.pending()
    if not rows:
        return Reply.text("no pending requests")
    now = time.time()
    return table(["request", "command", "asked by", "needs", "expires in"],
                 [[f"#{r['id']}", r["text"], r["requester"], str(r["needed"]),
                   human_duration(max(0, r["expires"] - now))] for r in rows],
                 title="Pending requests")
