"""!ssh: root's authorized_keys — list, add and remove keys. This is the chat surface; the [ssh]
settings are the SSH feature's (spbot/features/ssh/) and spbot.system.sshkeys does the file work with
the real ssh-keygen."""
from __future__ import annotations

import re
from typing import Annotated

from spbot.context import Context, UserError
from spbot.features.ssh import SshFeature
from spbot.registry import MAX_LINE_CHARS, Arg, command
from spbot.render import Item, Reply, items
from spbot.system.sshkeys import AuthorizedKey, AuthorizedKeys, SshKeyError, normalize_fingerprint


def describe(key: AuthorizedKey) -> str:
    comment = f" “{key.comment}”" if key.comment else ""
    return f"{key.kind} {key.bits} bits {key.fingerprint}{comment}"


def keys_count(n: int) -> str:
    return f"{n} key" + ("" if n == 1 else "s")


# -- !ssh list -----------------------------------------------------------------------------


@command("ssh list", group="users", help="root's SSH keys: type, bits, fingerprint, comment")
async def ssh_list(ctx: Context) -> Reply:
    keys = ctx.feature(SshFeature).authorized_keys()
    try:
        found = await keys.list()
    except SshKeyError as exc:
        raise UserError(f"Cannot list the SSH keys: {exc}.") from exc
    if not found:
        return Reply.text(f"🔑 No SSH keys in {keys.path}: nobody can log in as root with a key. "
                          f"Add one with {ctx.config.command_prefix}ssh add <public key line>.")
    entries = [Item(f"line {k.line_no}: {k.kind} {k.bits} bits", [
        k.comment + (" (has options, managed by hand)" if k.options else "")], k.fingerprint) for k in found]
    return items(f"🔑 {keys_count(len(found))} in {keys.path}", entries)


# -- !ssh add ------------------------------------------------------------------------------


async def _checked(keys: AuthorizedKeys, line: str) -> AuthorizedKey:
    # AuthorizedKeys has no public dry run; these are the same checks `add` makes first.
    return await keys._validated(keys._parse_candidate(line), line_no=0)


async def add_preview(bot, key: list[str]) -> str:
    keys = bot.feature(SshFeature).authorized_keys()
    try:
        candidate = await _checked(keys, " ".join(key))
        present = await keys.list()
    except SshKeyError as exc:
        return f"⚠️ This will not work as asked: {exc}."
    if any(k.fingerprint == candidate.fingerprint for k in present):
        return "⚠️ This will not work as asked: this key is already authorized."
    return (f"Adds {describe(candidate)} to {keys.path} ({keys_count(len(present))} there now): "
            "whoever holds its private key can log in as root.")


@command("ssh add", group="users", help="authorize a public key for root: ed25519, ecdsa or RSA ≥ 3072 "
         "(needs approval)", dangerous=True, preview=add_preview)
async def ssh_add(ctx: Context, *key: Annotated[str, Arg(metavar="public key line",
                                                        max_length=MAX_LINE_CHARS)]) -> Reply:
    keys = ctx.feature(SshFeature).authorized_keys()
    line = pasted_key(ctx, "ssh add") or " ".join(key)
    try:
        added = await keys.add(line)
        total = len(await keys.list())
    except SshKeyError as exc:
        raise UserError(f"Key not added: {exc}.", "Nothing was changed.") from exc
    backup = keys.path.name + keys.params.backup_suffix
    return Reply.text(f"✅ Added {describe(added)} to {keys.path} ({keys_count(total)} now). "
                      f"The previous file is kept as {backup}.")


def pasted_key(ctx: Context, name: str) -> str:
    """The key line exactly as pasted: the parsed words lose quotes (e.g. of command="…" options)."""
    prefix = re.escape(ctx.config.command_prefix)
    words = r"\s+".join(re.escape(w) for w in name.split())
    match = re.match(rf"^\s*{prefix}{words}\s+(?:--\s+)?(.*)$", ctx.request.text, re.I | re.S)
    return match.group(1).strip() if match else ""


# -- !ssh remove ---------------------------------------------------------------------------


async def remove_preview(bot, fingerprint: str) -> str:
    keys = bot.feature(SshFeature).authorized_keys()
    try:
        present = await keys.list()
        wanted = [k for k in present if k.fingerprint == normalize_fingerprint(fingerprint)]
    except SshKeyError as exc:
        return f"⚠️ This will not work as asked: {exc}."
    if not wanted:
        return f"⚠️ This will not work as asked: no key in {keys.path} has that fingerprint."
    lines = [f"Removes {describe(k)} (line {k.line_no}) from {keys.path}." for k in wanted]
    if len(present) == len(wanted):
        lines.append("⚠️ It is the last key: nobody could log in as root with a key afterwards.")
    return "\n".join(lines)


@command("ssh remove", group="users", help="remove root's SSH key with this SHA256 fingerprint (needs approval)",
         dangerous=True, preview=remove_preview)
async def ssh_remove(ctx: Context, fingerprint: Annotated[str, Arg(metavar="fingerprint")]) -> Reply:
    keys = ctx.feature(SshFeature).authorized_keys()
    try:
        removed = await keys.remove(fingerprint)
        left = len(await keys.list())
    except SshKeyError as exc:
        raise UserError(f"Nothing removed: {exc}.", f"See the keys with "
                        f"{ctx.config.command_prefix}ssh list.") from exc
    gone = "; ".join(describe(k) for k in removed)
    warning = "\n⚠️ No keys are left: nobody can log in as root with a key." if left == 0 else ""
    return Reply.text(f"✅ Removed {gone} from {keys.path} ({keys_count(left)} left). The previous "
                      f"file is kept as {keys.path.name}{keys.params.backup_suffix}.{warning}")
