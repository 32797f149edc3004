"""!audit: who asked for what, from which device, who approved, and how it ended (the command and its
arguments shown quoted: they are the sender's words)."""
from datetime import datetime
from zoneinfo import ZoneInfo

from spbot.context import Context
from spbot.registry import command
from spbot.render import Item, Reply, clip, items, quote_user_text, visible_text


@command("audit", group="core", help="the last audit entries: !audit [n]")
async def audit(ctx: Context, count: int = 10) -> Reply:
    entries = await ctx.audit.recent(max(1, min(count, 100)))
    zone = ZoneInfo(ctx.config.timezone)
    shown = []
    for e in entries:
        args = " ".join(f"{k}={v}" for k, v in _args(e["args"]).items() if v not in (None, [], False))
        approved = ", ".join(_list(e["approvals"]))
        shown.append(Item(datetime.fromtimestamp(e["ts"], zone).strftime("%m-%d %H:%M"), [
            quote_user_text(f"{e['command']} {args}".strip(), limit=80),
            f"{e['sender']} ({clip(visible_text(e['device_id'] or '-'), 40)})",
            f"approved by {approved}" if approved else "", e["result"]]))
    return items(f"Audit: last {len(shown)}", shown)


def _args(text: str) -> dict:
    import json
    try:
        return json.loads(text)
    except ValueError:
        return {}


def _list(text: str | None) -> list:
    import json
    try:
        return json.loads(text or "[]")
    except ValueError:
        return []
