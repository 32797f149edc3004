"""!fleet: every server of the room in one line each (gathered into one reply), and who is silent;
!fleet trust: accept a reinstalled peer bot's new device."""
from spbot.context import Context
from spbot.features.fleet import FleetFeature
from spbot.registry import ONE_OTHER_ADMIN, command
from spbot.render import Reply
from spbot.request import UserError


@command("fleet", group="system", help="each server of this room in one line: up, load, worst disk, last backup, pending "
                       "upgrades, failing services; and which bot is silent")
async def fleet(ctx: Context) -> Reply:
    return Reply.text(await ctx.feature(FleetFeature).line())


@command("fleet trust", group="system", help="accept the new device of another server's bot (after it was reinstalled)",
         dangerous=True, policy=ONE_OTHER_ADMIN)
async def fleet_trust(ctx: Context, host: str) -> Reply:
    if not await ctx.feature(FleetFeature).trust_again(host.lower()):
        raise UserError(f"{host} is not a bot of this fleet.", "see [fleet] peers in this bot's config.")
    return Reply.text(f"I will trust the next device that speaks for {host} (and only that one).")
