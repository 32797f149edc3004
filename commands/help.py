"""!help: generated from the command declarations."""
from html import escape
from typing import Annotated

from spbot.context import Context, UserError
from spbot.registry import Arg, command
from spbot.render import Reply


@command("help", help="list the commands, or explain one: !help backup now")
async def help_(ctx: Context, *topic: Annotated[str, Arg(max_length=100)]) -> Reply:
    prefix = ctx.config.command_prefix
    registry = ctx.registry
    if not topic:
        return _overview(ctx, prefix)
    words = [w.lstrip(prefix) for w in topic]
    spec, rest = registry.find(words)
    if spec is not None and not rest:
        return _details(ctx, spec, prefix)
    group = registry.group(words[0])
    if group:
        return _listing(f"{prefix}{words[0]} commands", group, ctx, prefix)
    close = registry.suggest(words)
    hint = ("did you mean " + " or ".join(f"{prefix}help {c}" for c in close) + "?") if close \
        else f"send {prefix}help for the list."
    raise UserError(f"there is no command {prefix}{' '.join(words)}", hint)


def _overview(ctx: Context, prefix: str) -> Reply:
    reply = _listing("Commands (send !help <command> for details)".replace("!", prefix),
                     ctx.registry.visible(), ctx, prefix)
    return reply


def _listing(title: str, specs, ctx: Context, prefix: str) -> Reply:
    lines, items = [title], []
    for spec in specs:
        needs = ctx.policy_for(spec).needs_request
        mark = " (needs approval)" if needs and "approval" not in spec.help else ""
        lines.append(f"{prefix}{spec.name} — {spec.help}{mark}")
        items.append(f"<li><code>{escape(prefix + spec.name)}</code> — {escape(spec.help)}"
                     f"{escape(mark)}</li>")
    return Reply("\n".join(lines), f"<b>{escape(title)}</b><ul>{''.join(items)}</ul>")


def _details(ctx: Context, spec, prefix: str) -> Reply:
    policy = ctx.policy_for(spec)
    lines = [f"usage: {spec.usage(prefix)}", spec.help]
    if spec.long_help:
        lines.append(spec.long_help)
    for param in spec.params:
        if param.help:
            lines.append(f"  {param.usage()}: {param.help}")
    if policy.approvals:
        lines.append(f"needs the approval of {policy.approvals} other admin(s)")
    elif policy.confirm:
        lines.append("asks you to confirm before it runs")
    html = f"<code>{escape(lines[0])}</code><br>" + "<br>".join(escape(l) for l in lines[1:])
    return Reply("\n".join(lines), html)
