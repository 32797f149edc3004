"""!status: what the bot is and what it is doing."""
from spbot import __version__
from spbot.context import Context
from spbot.registry import command
from spbot.render import Reply, human_duration


@command("status", group="core", help="bot version, uptime, homeserver, device, rooms, admins and scheduled jobs")
async def status(ctx: Context) -> Reply:
    user_id, device_id = ctx.identity
    jobs = sorted(ctx.scheduler.get_jobs(), key=lambda j: j.id)
    job_lines = [f"  {j.name}: next {j.next_run_time:%Y-%m-%d %H:%M %Z}" if j.next_run_time
                 else f"  {j.name}: paused" for j in jobs]
    lines = [
        f"spbot {__version__}, up {human_duration(ctx.uptime())}",
        f"homeserver: {ctx.config.homeserver} as {user_id}, device {device_id}",
        f"rooms: {', '.join(ctx.admin_rooms()) or 'none'}",
        f"admins: {', '.join(ctx.config.admins)}",
        f"messages waiting to be sent: {await ctx.messages_waiting()}",
        "scheduled jobs:", *(job_lines or ["  none"]),
    ]
    lines.extend(await ctx.status_lines())
    return Reply.text("\n".join(lines))
