"""!jobs and !cancel: what is running, what ran, and stopping it. A job's result line may repeat the
requester's arguments, so it is shown quoted."""
import time

from spbot.context import Context, UserError
from spbot.registry import command
from spbot.render import Item, Reply, human_duration, items, quote_user_text


STATE_ICONS = {"running": "⏳", "queued": "⏳", "done": "✅", "failed": "❌", "cancelled": "⏹",
               "interrupted": "⚠️"}
RESULT_CHARS = 80


@command("jobs", group="approvals", help="running and recent jobs")
async def jobs(ctx: Context, count: int = 10) -> Reply:
    rows = await ctx.jobs.recent(max(1, min(count, 50)))
    if not rows:
        return Reply.text("no jobs yet")
    now = time.time()
    entries = []
    for row in rows:
        began = row["started"] or row["created"]
        took = (row["ended"] or now) - began
        state = f"{STATE_ICONS.get(row['state'], '')} {row['state']}".strip()
        entries.append(Item(f"#{row['id']} {row['title']}", [state, human_duration(took), row["requester"]],
                            quote_user_text(row["summary"], limit=RESULT_CHARS) if row["summary"] else ""))
    return items("Jobs", entries)


@command("cancel", group="approvals", help="cancel a running job: !cancel <job id>")
async def cancel(ctx: Context, job_id: int) -> Reply:
    try:
        return Reply.text(await ctx.jobs.cancel(job_id, ctx.sender))
    except LookupError as exc:
        raise UserError(str(exc), "see !jobs for what is running")
