"""!dns: the records the server needs against what the zone holds (Cloudflare or deSEC), and a sync
that writes only the differences. A scheduled check alerts when the zone drifts."""
from __future__ import annotations

from spbot.context import Context
from spbot.features.common import tolerant_preview
from spbot.features.dns import DnsFeature
from spbot.features.dns.zone import (
    check_dns, dns_zone, drift_summary, expected, provider_label,
)
from spbot.providers.dns.diff import RecordCheck, Status, check_zone, conflicts, plan_sync
from spbot.providers.dns.records import DnsRecord, RecordChange
from spbot.registry import command
from spbot.render import Item, Reply, items

ICONS = {Status.OK: "✅ ok", Status.MISSING: "❌ missing", Status.DIFFERENT: "⚠️ different",
         Status.CONFLICT: "⛔ CNAME conflict"}


@command("dns check", group="cloud", help="expected DNS records against the zone: ok, missing or different")
async def dns_check(ctx: Context) -> Reply:
    feature = ctx.feature(DnsFeature)
    settings = feature.require_settings()
    checks = await check_dns(settings)
    if all(c.status is Status.OK for c in checks):
        await feature.report_drift(settings, checks)  # clears a drift alert, if any
    counts = {status: sum(c.status is status for c in checks) for status in Status}
    title = (f"🌐 DNS of {settings.domain} at {provider_label(settings)}: "
             f"{counts[Status.OK]} ok, {counts[Status.MISSING]} missing, "
             f"{counts[Status.DIFFERENT]} different"
             + (f", {counts[Status.CONFLICT]} in conflict with a CNAME"
                if counts[Status.CONFLICT] else ""))
    reply = items(title, [check_item(c) for c in checks])
    if counts[Status.OK] < len(checks):
        reply += Reply.text("!dns sync writes the missing and different ones (needs approval).")
    for name, target in conflicted_names(checks).items():
        reply += Reply.text(conflict_line(name, target))
    return reply


def conflicted_names(checks: list[RecordCheck]) -> dict[str, str]:
    """name -> the CNAME's target, for every name where a CNAME blocks our records."""
    return {c.expected.name: ", ".join(r.content for r in c.actual) for c in conflicts(checks)}


def conflict_line(name: str, target: str) -> str:
    return (f"⛔ {name} is a CNAME to {target}: DNS allows no other record next to it, so the "
            f"A/AAAA records cannot be added. `!dns sync --replace-cname` replaces the CNAME "
            "(needs approval); plain !dns sync leaves the name alone.")


def check_item(check: RecordCheck) -> Item:
    want = check.expected
    if check.status is Status.OK:
        return Item(f"{want.name} {want.type}", [ICONS[check.status], short(value(want))])
    if check.status is Status.CONFLICT:
        actual = "CNAME " + ", ".join(short(r.content) for r in check.actual)
    else:
        actual = ", ".join(short(value(r)) for r in check.actual) or "–"
    return Item(f"{want.name} {want.type}", [ICONS[check.status], f"expected {short(value(want))}",
                                              f"found {actual}"])


def value(record: DnsRecord) -> str:
    return (f"{record.priority} " if record.priority is not None else "") + record.content


def short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@tolerant_preview
async def sync_preview(bot, *, replace_cname: bool = False) -> str:
    settings = bot.feature(DnsFeature).require_settings()
    checks = await check_dns(settings)
    todo = [c for c in checks if c.status is not Status.OK
            and (replace_cname or c.status is not Status.CONFLICT)]
    lines = ([f"{len(todo)} change(s) at {provider_label(settings)} for {settings.domain}:"]
             + [f"• {planned(c)}" for c in todo]) if todo else [
        f"Nothing to change at {settings.domain}."]
    if not replace_cname:
        lines += [f"• skip {name}: a CNAME to {target} holds the name (--replace-cname "
                  "replaces it)" for name, target in conflicted_names(checks).items()]
    return "\n".join(lines)


def planned(check: RecordCheck) -> str:
    if check.status is Status.MISSING:
        return f"create {check.expected.describe()}"
    if check.status is Status.CONFLICT:
        was = ", ".join(r.content for r in check.actual)
        return f"replace the CNAME {check.expected.name} → {was} with {check.expected.describe()}"
    was = ", ".join(short(value(r)) for r in check.actual)
    return f"update {check.expected.describe()} (now {was})"


@command("dns sync", group="cloud", help="create or update the DNS records that differ in one atomic write "
                         "(needs approval); --replace-cname also replaces a CNAME that holds a "
                         "managed name", dangerous=True, locks={"dns"}, preview=sync_preview)
async def dns_sync(ctx: Context, *, replace_cname: bool = False) -> Reply:
    """Writes all changes in one request (Cloudflare's batch, deSEC's bulk PATCH): the zone
    gets all of them or none. A name held by a CNAME is skipped unless --replace-cname."""
    feature = ctx.feature(DnsFeature)
    settings = feature.require_settings()
    await ctx.job.progress(f"reading and updating the zone at {provider_label(settings)}")
    async with dns_zone(settings) as zone:
        checks = await check_zone(zone, expected(settings))
        changes = plan_sync(checks, replace_cnames=replace_cname)
        if changes:
            await zone.apply(changes)
    skipped = {} if replace_cname else conflicted_names(checks)
    after = await check_dns(settings)
    await feature.report_drift(settings, after)
    left = drift_summary(after)
    head = (f"✅ DNS of {settings.domain} at {provider_label(settings)}: "
            + (f"{len(changes)} change(s) made." if changes else "nothing needed changing."))
    lines = [head] + [f"• {done(c)}" for c in changes]
    lines += [f"• skipped {name}: {conflict_line(name, target).split(': ', 1)[1]}"
              for name, target in skipped.items()]
    lines.append(f"Still different: {left}." if left else
                 f"All {len(after)} expected records match now.")
    return Reply.text("\n".join(lines))


def done(change: RecordChange) -> str:
    if change.action == "replace":
        was = ", ".join(short(r.content) for r in change.replaces)
        return f"replaced the CNAME (to {was}) with {change.record.describe()}"
    if change.action == "create" or not change.replaces:
        return f"created {change.record.describe()}"
    was = ", ".join(short(value(r)) for r in change.replaces)
    return f"updated {change.record.describe()} (was {was})"
