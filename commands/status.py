"""!status: what the bot is and what it is doing."""
from spbot import __version__
from spbot.context import Context
from spbot.registry import command
from spbot.render import Reply, human_duration


@command("status", help="bot version, uptime, homeserver, device, rooms, admins and scheduled jobs")
async def status(ctx: Context) -> Reply:
    bot = ctx.bot
    client = bot.connection.client
    jobs = sorted(bot.scheduler.get_jobs(), key=lambda j: j.id)
    job_lines = [f"  {j.name}: next {j.next_run_time:%Y-%m-%d %H:%M %Z}" if j.next_run_time
                 else f"  {j.name}: paused" for j in jobs]
    lines = [
        f"spbot {__version__}, up {human_duration(bot.uptime())}",
        f"homeserver: {bot.config.homeserver} as {client.user_id}, device {client.device_id}",
        f"rooms: {', '.join(bot.admin_rooms()) or 'none'}",
        f"admins: {', '.join(bot.config.admins)}",
        f"messages waiting to be sent: {await bot.outbox.pending()}",
        "scheduled jobs:", *(job_lines or ["  none"]),
    ]
    for extra in bot.status_sections:
        lines.extend(await extra(bot))
    lines.extend(await bot.features.status_lines())
    return Reply.text("\n".join(lines))
