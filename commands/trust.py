"""!devices and !trust: which admin devices the bot trusts (and the keys it binds their messages to), and
accepting an admin's new cross-signing identity.

`!trust @bob` pins exactly the key it shows: another admin whose own identity is trusted approves
`!trust pin @bob <key>`, and if the identity moves again before that, nothing is pinned. With no such
admin (a family of two), the requester alone is enough after `[trust] sole_admin_wait`, announced loudly
at the start and the end and cancellable with `!trust cancel @bob`. At the server's console,
`spbot trust accept @bob` does it at once (and the room is told)."""
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import ConfigDict, Field

from spbot.config import USER_ID, Duration, config_section
from spbot.context import Context, Request, UserError
from spbot.registry import command, on_startup, shown
from spbot.render import Item, Reply, human_duration, items, mention
from spbot.trust import CrossSigningError, KeyMoved, Trust, format_fingerprint
from spbot.trust.signing import decode_b64
from spbot.model import Model


@config_section("trust")
class TrustSettings(Model):
    """[trust]: how long the only trusted admin waits before accepting another admin's new identity alone."""
    model_config = ConfigDict(extra="forbid")
    sole_admin_wait: Duration = Field(
        24 * 3600.0,
        description="When an admin's cross-signing identity changes and only one other admin is trusted, "
                    "that admin's !trust accept alone takes effect after this long (announced loudly).")


# --- !devices ------------------------------------------------------------------------------------------

@command("devices", group="users",
         help="each admin's devices, whether the bot trusts them, and the keys it binds them to")
async def devices(ctx: Context, user: str | None = None) -> Reply:
    users = [_admin(ctx, user)] if user else list(ctx.config.admins)
    entries = []
    trust = _trust(ctx)
    for user_id in users:
        identity = await _identity(ctx, user_id)
        await trust.devices.refresh(user_id)
        pinned = await trust.pins.pinned_key(user_id)
        changed = bool(pinned and identity.master_key and pinned != identity.master_key)
        for device_id, device in sorted(identity.devices.items()):
            bound = trust.devices.bound_key(user_id, device_id)
            state = _state(ctx, device.cross_signed and device.curve25519 == bound, changed)
            differ = "" if bound == device.curve25519 else (
                f"I bind it to {_short(bound)}: keys differ, "
                + ("refused" if ctx.config.device_policy == "cross-signed" else "announced every time"))
            entries.append(Item(f"{user_id} {device_id}", [device.display_name or "",
                                                           f"key {_short(device.curve25519)}", state], differ))
        entries.append(Item(f"{user_id} identity", [
            "CHANGED to " + identity.fingerprint if changed else
            ("no cross-signing" if not identity.has_identity else "ok")], "pinned " + format_fingerprint(pinned)))
    return items(f"Admin devices (policy: {ctx.config.device_policy}); key: the homeserver's record", entries)


def _short(key: str | None) -> str:
    return key[:8] + "…" if key else "(none)"


def _state(ctx: Context, cross_signed: bool, changed: bool) -> str:
    if changed:
        return "refused (identity changed)"
    if cross_signed:
        return "cross-signed"
    if ctx.config.device_policy == "cross-signed":
        return "refused (not verified)"
    return "trusted on first use"


# --- !trust --------------------------------------------------------------------------------------------

@command("trust", group="users",
         help="accept an admin's new cross-signing identity (after checking with them in person)")
async def trust(ctx: Context, user: str) -> Reply | None:
    user_id = _admin(ctx, user)
    identity = await _identity(ctx, user_id, fresh=True)
    if not identity.has_identity:
        raise UserError(f"{user_id} has no cross-signing identity, so there is nothing to accept.",
                        "They set one up in their client (Element: Settings → Security & Privacy → "
                        "cross-signing / Secure Backup); the first one I see is pinned by itself.")
    pin = await _trust(ctx).pins.check(user_id, identity)
    if pin.state in ("ok", "pinned"):
        return Reply.text(f"nothing to accept: the identity of {user_id} ({pin.fingerprint}) is the "
                          "one I trust.")
    if user_id == ctx.sender:
        raise UserError("you cannot accept your own new identity.", "Another admin sends !trust for you.")
    try:
        eligible = await _trust(ctx).eligible_approvers(ctx.sender, user_id)
    except CrossSigningError as exc:
        raise UserError(f"could not look up the other admins' identities: {exc}", "try again in a minute")
    key = identity.master_key
    spec = ctx.bot.registry.commands["trust pin"]
    policy = ctx.bot.policy_for(spec)
    if len(eligible) >= max(policy.approvals, 1) or not policy.needs_request:
        await _ask_for_approval(ctx, spec, policy, user_id, key)
        return None
    return await _wait_alone(ctx, user_id, pin.pinned_fingerprint, key)


async def _ask_for_approval(ctx: Context, spec, policy, user_id: str, key: str) -> None:
    """The request is for `!trust pin @user <key>`: what gets approved names the key it pins."""
    text = f"{ctx.config.command_prefix}trust pin {user_id} {key}"
    request = Request(ctx.sender, ctx.request.device_id, ctx.request.room_id, ctx.request.event_id, text,
                      ctx.request.sent_ts_ms)
    args = spec.parse([user_id, key])
    if not policy.needs_request:
        await ctx.bot.dispatcher.run(request, spec, args)
        return
    await ctx.bot.approvals.open(request, spec, args, policy)


async def _wait_alone(ctx: Context, user_id: str, pinned_fp: str, key: str) -> Reply:
    wait = ctx.config.settings("trust").sole_admin_wait
    record = await _trust(ctx).start_waiting(user_id, key, ctx.sender, wait)
    when = datetime.fromtimestamp(record["due"], ZoneInfo(ctx.config.timezone))
    admins = list(ctx.config.admins)
    return mention(admins, (
        f"🚨 {record['requested_by']} asked to accept the new identity of {user_id}: "
        f"{format_fingerprint(key)} (was {pinned_fp}). No other admin with a trusted identity can approve "
        f"it, so I will accept exactly this key at {when:%Y-%m-%d %H:%M %Z} (in "
        f"{human_duration(max(0, record['due'] - time.time()))}) unless someone sends "
        f"!trust cancel {user_id} before. {user_id}: if you did not reset your identity, say so now, in "
        "person. At the server, `spbot trust accept` does it at once."))


class IdentityKey(str):
    """A master key as the request shows it: 32 bytes in unpadded base64 (checked before anyone is asked)."""

    @classmethod
    def parse_arg(cls, word: str) -> "IdentityKey":
        try:
            valid = len(decode_b64(word)) == 32
        except ValueError:
            valid = False
        if not valid:
            raise ValueError(f"{shown(word)} is not an identity key (43 characters of base64)")
        return cls(word)


async def _pin_preview(bot, user: str, key: str) -> str:
    pin = await bot.trust.pins.pinned_key(user)
    return (f"{user}: pinned identity {format_fingerprint(pin)} → new identity {format_fingerprint(key)}. "
            f"Only this key is pinned. Votes of admins whose own identity is not trusted "
            f"(including {user}) do not count.")


@command("trust pin", group="users", hidden=True, dangerous=True, job=False, preview=_pin_preview,
         help="pin exactly this identity key for an admin (what !trust asks the other admins to approve)")
async def trust_pin(ctx: Context, user: str, key: IdentityKey) -> Reply:
    user_id = _admin(ctx, user)
    try:
        fingerprint = await _trust(ctx).accept(user_id, expected=key, by="approved in the room")
    except KeyMoved as exc:
        raise UserError(f"nothing was pinned: {exc}.",
                        f"Check the new key with {user_id} in person, then send !trust {user_id} again.")
    except ValueError as exc:
        raise UserError(f"nothing was pinned: {exc}.")
    except CrossSigningError as exc:
        raise UserError(f"could not look up the identity of {user_id}: {exc}", "try again in a minute")
    return Reply.text(f"accepted the new identity of {user_id}: {fingerprint}")


@command("trust cancel", group="users", help="cancel a waiting acceptance of an admin's new identity")
async def trust_cancel(ctx: Context, user: str) -> Reply:
    user_id = _admin(ctx, user)
    if not await _trust(ctx).cancel_waiting(user_id):
        return Reply.text(f"no acceptance of {user_id}'s identity is waiting.")
    return mention(list(ctx.config.admins), f"cancelled: the new identity of {user_id} will not be "
                   f"accepted (cancelled by {ctx.sender}).")


@on_startup
async def _start_ticker(bot) -> None:
    bot.spawn(bot.trust.run_ticker(), name="trust ticker")


# --- helpers -------------------------------------------------------------------------------------------

def _trust(ctx: Context) -> Trust:
    """All these commands need of the runtime (besides the approval flow of !trust)."""
    return ctx.bot.trust


def _admin(ctx: Context, user: str) -> str:
    if not USER_ID.match(user) or user not in ctx.config.admins:
        raise UserError(f"{user} is not one of the admins", "admins: " + ", ".join(ctx.config.admins))
    return user


async def _identity(ctx: Context, user_id: str, fresh: bool = False):
    try:
        return await _trust(ctx).identity(user_id, fresh=fresh)
    except CrossSigningError as exc:
        raise UserError(f"could not look up the devices of {user_id}: {exc}", "try again in a minute")
