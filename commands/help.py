"""!help: generated from the command declarations. The overview names the groups (each command declares
its own) with their commands in a few short lines; !help <group> lists one group, !help <command>
explains one command."""
from typing import Annotated

from spbot.context import Context, UserError
from spbot.registry import Arg, command
from spbot.render import Reply, escape

# key (what !help <key> takes) → title, in the order the overview shows them
GROUPS = {"core": "core", "approvals": "approvals and jobs", "disks": "disk and services",
          "backups": "backups", "system": "system", "users": "users and keys", "cloud": "cloud and DNS",
          "other": "other"}


@command("help", group="core", help="list the commands, or explain one: !help backup now")
async def help_(ctx: Context, *topic: Annotated[str, Arg(max_length=100)]) -> Reply:
    prefix = ctx.config.command_prefix
    registry = ctx.registry
    if not topic:
        return _overview(ctx, prefix)
    words = [w.lstrip(prefix) for w in topic]
    spec, rest = registry.find(words)
    if spec is not None and not rest:
        return _details(ctx, spec, prefix)
    if len(words) == 1 and words[0].lower() in GROUPS:
        key = words[0].lower()
        return _listing(f"{GROUPS[key].capitalize()} commands", _in_group(ctx, key), ctx, prefix)
    group = registry.group(words[0])
    if group:
        return _listing(f"{prefix}{words[0]} commands", group, ctx, prefix)
    close = registry.suggest(words)
    hint = ("did you mean " + " or ".join(f"{prefix}help {c}" for c in close) + "?") if close \
        else f"send {prefix}help for the list."
    raise UserError(f"there is no command {prefix}{' '.join(words)}", hint)


def _in_group(ctx: Context, key: str) -> list:
    return [spec for spec in ctx.registry.visible() if spec.group == key]


def _overview(ctx: Context, prefix: str) -> Reply:
    title = f"Commands by group: {prefix}help <group> lists one, {prefix}help <command> explains one"
    lines, html = [title], []
    for key, name in GROUPS.items():
        specs = _in_group(ctx, key)
        if not specs:
            continue
        names = _short_names(specs)
        lines.append(f"{name} ({prefix}help {key}): {names}")
        html.append(f"<li><b>{escape(name)}</b> (<code>{escape(prefix)}help {escape(key)}</code>): "
                    f"{escape(names)}</li>")
    return Reply("\n".join(lines), f"<b>{escape(title)}</b><ul>{''.join(html)}</ul>")


def _short_names(specs) -> str:
    """'backup (now, list, stats)', 'upgrade (check)': a command and its subcommands in one entry."""
    by_first: dict[str, list[str]] = {}
    for spec in specs:
        first, _, rest = spec.name.partition(" ")
        by_first.setdefault(first, []).append(rest)
    return ", ".join(first + (f" ({', '.join(r for r in rests if r)})" if any(rests) else "")
                     for first, rests in by_first.items())


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
