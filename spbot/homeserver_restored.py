"""What the bot does before it resumes its sync from a position the homeserver is behind (its database put
back as it was earlier: spbot/timeline.py).

It syncs from no position: a sync from the old one would acknowledge every to-device message below it,
and the homeserver would delete the room keys the admins' devices sent to the bot since the restore.

And it claims its own one-time keys there first. The restored database holds again the one-time keys it
held when it was saved, and the bot has used some of them since (a device that opened a channel with it
after that save): a device that first writes to the bot now would be handed one of those, and the bot
could not open its message (its room key lost). Claimed by the bot, none is handed out again; the
homeserver then counts none left, and the bot uploads new ones after that sync (spbot/matrix.py
key_upkeep). Until then a device gets the bot's fallback key, which it still holds."""
from __future__ import annotations

from nio import Api, AsyncClient

from .logs import get_logger
from .timeline import answer_of, homeserver_behind

log = get_logger(__name__)

MOST_CLAIMS = 200          # a homeserver holds at most what the bot uploaded: 50 with nio


async def position_to_resume(client: AsyncClient, since: str | None) -> str | None:
    """`since`, or None when the homeserver went back behind it (the resurrected one-time keys claimed)."""
    if not await homeserver_behind(client, since):
        return since
    claimed = await claim_own_one_time_keys(client)
    log.warning("homeserver_behind_position", position=since, one_time_keys_claimed=claimed,
                why="its database was put back: syncing from no position, with fresh one-time keys")
    return None


async def claim_own_one_time_keys(client: AsyncClient) -> int:
    """Claim this device's one-time keys until the homeserver answers with its fallback key or none;
    how many were claimed. A refusal ends the claiming, never the sync: the bot goes on without it."""
    for claimed in range(MOST_CLAIMS):
        body = await answer_of(client, *Api.keys_claim(client.access_token, {client.user_id: [client.device_id]}))
        if body is None:
            log.warning("own_one_time_keys_not_claimed", claimed=claimed)
            return claimed
        keys = body.get("one_time_keys", {}).get(client.user_id, {}).get(client.device_id, {})
        if not keys or any(isinstance(key, dict) and key.get("fallback") for key in keys.values()):
            return claimed
    return MOST_CLAIMS
