"""!fleet: every server of the room in one line each (gathered into one reply), and who is silent;
!fleet trust: accept another server's bot's new cross-signing identity (after it lost its keys and was
reset). Like !trust for an admin, it pins exactly the key the request shows, with another admin's
approval; if the identity moves again before that, nothing is pinned."""
from spbot.context import Context, Request, UserError
from spbot.features.fleet import FleetFeature
from spbot.features.fleet.peers import PeerTrust
from spbot.registry import command
from spbot.render import Reply
from spbot.trust import CrossSigningError, KeyMoved, format_fingerprint


@command("fleet", group="system", help="each server of this room in one line: up, load, worst disk, last backup, pending "
                       "upgrades, failing services; and which bot is silent")
async def fleet(ctx: Context) -> Reply:
    return Reply.text(await ctx.feature(FleetFeature).line())


@command("fleet trust", group="system",
         help="accept the new cross-signing identity of another server's bot (another admin approves)")
async def fleet_trust(ctx: Context, host: str) -> Reply | None:
    name, trust = _peer(ctx, host)
    try:
        pinned, identity = await trust.pending(name)
    except CrossSigningError as exc:
        raise UserError(f"could not look up the identity of {name}'s bot: {exc}", "try again in a minute")
    if not identity.has_identity:
        raise UserError(f"{name}'s bot account has no cross-signing identity, so there is nothing to accept.",
                        f"{name}'s bot makes one when it starts: check its log (`spbot doctor` there).")
    if pinned == identity.master_key:
        return Reply.text(f"nothing to accept: {name}'s bot identity ({identity.fingerprint}) is the one I trust.")
    spec = ctx.bot.registry.commands["fleet trust pin"]
    text = f"{ctx.config.command_prefix}fleet trust pin {name} {identity.master_key}"
    request = Request(ctx.sender, ctx.request.device_id, ctx.request.room_id, ctx.request.event_id, text,
                      ctx.request.sent_ts_ms)
    args, policy = spec.parse([name, identity.master_key]), ctx.policy_for(spec)
    if policy.needs_request:
        await ctx.approvals.open(request, spec, args, policy)
    else:                                        # [policies] lets one admin decide alone
        await ctx.bot.dispatcher.run(request, spec, args)
    return None


async def _pin_preview(bot, host: str, key: str) -> str:
    trust = bot.feature(FleetFeature).trust
    pinned = await trust.pins.pinned_key(trust.peers[host]) if trust and host in trust.peers else None
    return (f"{host}'s bot: pinned identity {format_fingerprint(pinned)} → new identity "
            f"{format_fingerprint(key)}. Only this key is pinned; ask whoever runs {host} whether its bot "
            "was reset.")


@command("fleet trust pin", group="system", hidden=True, dangerous=True, job=False, preview=_pin_preview,
         help="pin exactly this identity key for another server's bot (what !fleet trust asks to approve)")
async def fleet_trust_pin(ctx: Context, host: str, key: str) -> Reply:
    name, trust = _peer(ctx, host)
    try:
        fingerprint = await trust.accept(name, key, by="!fleet trust, approved in the room")
    except KeyMoved as exc:
        raise UserError(f"nothing was pinned: {exc}.", f"Send !fleet trust {name} again.")
    except ValueError as exc:
        raise UserError(f"nothing was pinned: {exc}.")
    except CrossSigningError as exc:
        raise UserError(f"could not look up the identity of {name}'s bot: {exc}", "try again in a minute")
    return Reply.text(f"✅ I trust {name}'s bot again: its identity is now {fingerprint}.")


def _peer(ctx: Context, host: str) -> tuple[str, PeerTrust]:
    trust = ctx.feature(FleetFeature).trust
    name = host.lower()
    if trust is None or name not in trust.peers:
        peers = ", ".join(sorted(trust.peers)) if trust else "none"
        raise UserError(f"{host} is not another bot of this fleet.", f"the others: {peers} ([fleet] peers).")
    return name, trust
