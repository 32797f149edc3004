"""!devices and !trust: which admin devices the bot trusts, and accepting an admin's new identity."""
from spbot.config import USER_ID
from spbot.context import Context, UserError
from spbot.crosssign import CrossSigningError, format_fingerprint
from spbot.registry import command
from spbot.render import Reply, table


async def _preview(bot, user: str) -> str:
    pin = await bot.trust.pins.pinned_key(user)
    pending = await bot.trust.pins.pending_key(user)
    return f"{user}: pinned identity {format_fingerprint(pin)} → new identity {format_fingerprint(pending)}"


@command("devices", help="each admin's devices, whether the bot trusts them, and their identity")
async def devices(ctx: Context, user: str | None = None) -> Reply:
    users = [_admin(ctx, user)] if user else list(ctx.config.admins)
    rows = []
    for user_id in users:
        try:
            identity = await ctx.bot.trust.identity(user_id)
        except CrossSigningError as exc:
            raise UserError(f"could not look up the devices of {user_id}: {exc}", "try again in a minute")
        pinned = await ctx.bot.trust.pins.pinned_key(user_id)
        changed = pinned and identity.master_key and pinned != identity.master_key
        announced = {r["device_id"] for r in await ctx.store.fetchall(
            "SELECT device_id FROM known_devices WHERE user_id = ?", (user_id,))}
        for device_id, device in sorted(identity.devices.items()):
            rows.append([user_id, device_id, device.display_name or "",
                         _state(ctx, device.cross_signed, device_id in announced, bool(changed))])
        rows.append([user_id, "identity", "pinned " + format_fingerprint(pinned),
                     "CHANGED to " + identity.fingerprint if changed else
                     ("no cross-signing" if not identity.has_identity else "ok")])
    return table(["admin", "device", "name", "trust"], rows,
                 title=f"Admin devices (policy: {ctx.config.device_policy})")


def _state(ctx: Context, cross_signed: bool, announced: bool, changed: bool) -> str:
    if changed:
        return "refused (identity changed)"
    if cross_signed:
        return "cross-signed"
    if ctx.config.device_policy == "cross-signed":
        return "refused (not verified)"
    return "trusted on first use, announced" if announced else "trusted on first use"


@command("trust", help="accept an admin's new cross-signing identity (after checking with them in person)",
         dangerous=True, preview=_preview)
async def trust(ctx: Context, user: str) -> Reply:
    user_id = _admin(ctx, user)
    fingerprint = await ctx.bot.trust.accept(user_id)
    return Reply.text(f"accepted the new identity of {user_id}: {fingerprint}")


def _admin(ctx: Context, user: str) -> str:
    if not USER_ID.match(user) or user not in ctx.config.admins:
        raise UserError(f"{user} is not one of the admins", "admins: " + ", ".join(ctx.config.admins))
    return user
