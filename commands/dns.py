"""!dns: the records the server needs against what the zone holds (Cloudflare or deSEC), and a sync
that writes only the differences. A scheduled check alerts when the zone drifts."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from providers.dns.diff import RecordCheck, Status, sync_zone
from providers.dns.records import DnsRecord, RecordChange
from spbot import cloud
from spbot.cloud import dns_settings, explained, provider_label
from spbot.context import Context
from spbot.registry import command, on_startup
from spbot.render import Reply, table

ICONS = {Status.OK: "✅ ok", Status.MISSING: "❌ missing", Status.DIFFERENT: "⚠️ different"}
FIRST_CHECK_WITHIN = 60.0  # seconds after start, so a drift is seen soon after a restart


@command("dns check", help="expected DNS records against the zone: ok, missing or different")
async def dns_check(ctx: Context) -> Reply:
    settings = dns_settings(ctx.bot)
    checks = await cloud.check_dns(settings)
    if all(c.status is Status.OK for c in checks):
        await cloud.report_drift(ctx.bot, settings, checks)  # clears a drift alert, if any
    counts = {status: sum(c.status is status for c in checks) for status in Status}
    title = (f"🌐 DNS of {settings.domain} at {provider_label(settings)}: "
             f"{counts[Status.OK]} ok, {counts[Status.MISSING]} missing, "
             f"{counts[Status.DIFFERENT]} different")
    reply = table(["status", "record", "expected", "actual"],
                  [check_row(c) for c in checks], title=title)
    if counts[Status.OK] < len(checks):
        reply += Reply.text("!dns sync writes the missing and different ones (needs approval).")
    return reply


def check_row(check: RecordCheck) -> list[str]:
    want = check.expected
    if check.status is Status.OK:
        actual = "same"
    else:
        actual = ", ".join(short(value(r)) for r in check.actual) or "–"
    return [ICONS[check.status], f"{want.name} {want.type}", short(value(want)), actual]


def value(record: DnsRecord) -> str:
    return (f"{record.priority} " if record.priority is not None else "") + record.content


def short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@cloud.tolerant_preview
async def sync_preview(bot) -> str:
    settings = dns_settings(bot)
    checks = await cloud.check_dns(settings)
    todo = [c for c in checks if c.status is not Status.OK]
    if not todo:
        return f"Nothing to change: every record of {settings.domain} matches."
    return "\n".join([f"{len(todo)} change(s) at {provider_label(settings)} for "
                      f"{settings.domain}:"] + [f"• {planned(c)}" for c in todo])


def planned(check: RecordCheck) -> str:
    if check.status is Status.MISSING:
        return f"create {check.expected.describe()}"
    was = ", ".join(short(value(r)) for r in check.actual)
    return f"update {check.expected.describe()} (now {was})"


@command("dns sync", help="create or update the DNS records that differ (needs approval)",
         dangerous=True, locks={"dns"}, preview=sync_preview)
async def dns_sync(ctx: Context) -> Reply:
    settings = dns_settings(ctx.bot)
    await ctx.job.progress(f"reading and updating the zone at {provider_label(settings)}")
    with explained():
        async with cloud.dns_zone(settings) as zone:
            changes = await sync_zone(zone, cloud.expected(settings))
    after = await cloud.check_dns(settings)
    await cloud.report_drift(ctx.bot, settings, after)
    left = cloud.drift_summary(after)
    head = (f"✅ DNS of {settings.domain} at {provider_label(settings)}: "
            + (f"{len(changes)} change(s) made." if changes else "nothing needed changing."))
    lines = [head] + [f"• {done(c)}" for c in changes]
    lines.append(f"Still different: {left}." if left else
                 f"All {len(after)} expected records match now.")
    return Reply.text("\n".join(lines))


def done(change: RecordChange) -> str:
    if change.action == "create" or not change.replaces:
        return f"created {change.record.describe()}"
    was = ", ".join(short(value(r)) for r in change.replaces)
    return f"updated {change.record.describe()} (was {was})"


@on_startup
async def schedule_drift_check(bot) -> None:
    settings = bot.config.settings("dns")
    if not settings.configured or not settings.check_interval:
        return
    first = min(settings.check_interval, FIRST_CHECK_WITHIN)
    bot.scheduler.add_job(cloud.DriftWatch(bot).run, "interval", seconds=settings.check_interval,
                          id="dns-drift", name="DNS drift check", replace_existing=True,
                          next_run_time=datetime.now(timezone.utc) + timedelta(seconds=first))
