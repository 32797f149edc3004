"""!approve, !deny and !requests: the command side of approval requests (reactions work too). A vote
counts only in the room the request was asked in; requests show their command text quoted."""
import time

from spbot.context import Context
from spbot.registry import command
from spbot.render import Item, Reply, human_duration, items, quote_user_text


@command("approve", group="approvals", help="approve a pending request: !approve <request id>")
async def approve(ctx: Context, request_id: int) -> Reply:
    return Reply.text(await ctx.approvals.vote(request_id, ctx.sender, True,
                                               event_id=ctx.request.event_id,
                                               room_id=ctx.request.room_id))


@command("deny", group="approvals", help="deny a pending request: !deny <request id> [reason]")
async def deny(ctx: Context, request_id: int, *reason: str) -> Reply:
    return Reply.text(await ctx.approvals.vote(request_id, ctx.sender, False, " ".join(reason),
                                               event_id=ctx.request.event_id,
                                               room_id=ctx.request.room_id))


@command("requests", group="approvals", help="pending approval requests asked in this room")
async def requests(ctx: Context) -> Reply:
    rows = await ctx.approvals.pending(ctx.request.room_id)
    elsewhere = len(await ctx.approvals.pending()) - len(rows)
    if not rows:
        reply = Reply.text("no pending requests here" if elsewhere else "no pending requests")
    else:
        now = time.time()
        reply = items("Pending requests", [
            Item(f"#{r['id']}", [quote_user_text(r["text"], limit=80), f"asked by {r['requester']}",
                                 f"needs {r['needed']}", f"expires in {human_duration(max(0, r['expires'] - now))}"])
            for r in rows])
    if elsewhere:
        reply += Reply.text(f"{elsewhere} more pending in other rooms (vote there).")
    return reply
