"""!jobs and !cancel: what is running, what ran, and stopping it. A job's result line may repeat the
requester's arguments, so it is shown quoted."""
import time

from spbot.context import Context, UserError
from spbot.registry import command
from spbot.render import Reply, human_duration, quote_user_text, table


@command("jobs", help="running and recent jobs")
async def jobs(ctx: Context, count: int = 10) -> Reply:
    rows = await ctx.jobs.recent(max(1, min(count, 50)))
    if not rows:
        return Reply.text("no jobs yet")
    now = time.time()
    lines = []
    for row in rows:
        began = row["started"] or row["created"]
        took = (row["ended"] or now) - began
        lines.append([f"#{row['id']}", row["title"], row["state"], row["requester"],
                      human_duration(took), quote_user_text(row["summary"], limit=60) if row["summary"] else ""])
    return table(["job", "what", "state", "asked by", "time", "result"], lines, title="Jobs")


@command("cancel", help="cancel a running job: !cancel <job id>")
async def cancel(ctx: Context, job_id: int) -> Reply:
    try:
        return Reply.text(await ctx.jobs.cancel(job_id, ctx.sender))
    except LookupError as exc:
        raise UserError(str(exc), "see !jobs for what is running")
