"""!matrix media: where the family homeserver's media goes (uploads here vs the cache of other servers'
media, the users and rooms holding the most, the database size); !matrix purge-remote-media [--older-than
30d]: delete the cached copies of other servers' media nobody opened for that long (another admin
approves). The homeserver is the enabled catalogue service with a media store ([services.synapse])."""
from __future__ import annotations

import re
from typing import Annotated

from spbot.context import Context, UserError
from spbot.features.services import ServicesFeature
from spbot.features.services.synapse import HomeserverUpkeep, UpkeepError
from spbot.features.services.synapse.media_store import measure, size_lines
from spbot.providers.synapse_media import PostgresOnly, SynapseMediaError
from spbot.registry import Arg, command
from spbot.render import Reply, human_bytes

SHOWN = 3               # users and rooms listed: a phone screen, not a report
DEFAULT_DAYS = 30


class Days(int):
    """--older-than: '30d' or '30' (days, 0 = everything cached now)."""

    @classmethod
    def parse_arg(cls, word: str) -> "Days":
        match = re.fullmatch(r"(\d{1,4})d?", word.strip().lower())
        if not match or int(match.group(1)) > 3650:
            raise ValueError(f"{word!r}: expected days such as 30d (0d: everything cached now)")
        return cls(int(match.group(1)))


def _upkeep(ctx_or_bot) -> HomeserverUpkeep:
    upkeep = ctx_or_bot.feature(ServicesFeature).homeserver
    if upkeep is None:
        raise UserError("No homeserver with a media store is enabled.",
                        "Enable it in the config: [services.synapse] (media_store = \"/path\" if it is not "
                        "/var/lib/matrix-synapse/media), then restart the bot.")
    return upkeep


def _short(user_id: str) -> str:
    return user_id.split(":", 1)[0]


@command("matrix media", group="system", help="the homeserver's media: uploads vs the cache of other servers, the biggest users "
                              "and rooms, the database size")
async def matrix_media(ctx: Context) -> Reply:
    upkeep = _upkeep(ctx)
    lines = [f"Media of {upkeep.spec.name} ({upkeep.media_store}):", *await upkeep.store_lines()]
    try:
        async with upkeep.api() as api:
            users = await api.users_by_media(SHOWN)
            rooms = await api.rooms_by_media(SHOWN)
            lines += await _database_rooms(api)
    except (SynapseMediaError, UpkeepError) as exc:
        lines.append(f"⚠️ {exc.what} {exc.todo}".rstrip())
        return Reply.text("\n".join(lines))
    lines.append("biggest uploaders: " + (", ".join(f"{_short(u.user_id)} {human_bytes(u.bytes)} ({u.count})"
                                                    for u in users) or "none yet"))
    lines.append("rooms with the most media (unencrypted only): "
                 + (", ".join(f"{r.name} {human_bytes(r.bytes)} ({r.local + r.remote})" for r in rooms) or "none"))
    lines.append(f"free space: !matrix purge-remote-media --older-than {DEFAULT_DAYS}d")
    return Reply.text("\n".join(lines))


async def _database_rooms(api) -> list[str]:
    try:
        rooms = await api.database_rooms()
    except PostgresOnly:
        return []
    return ["rooms taking the most database space: "
            + (", ".join(f"{r.room_id} ~{human_bytes(r.bytes)}" for r in rooms[:SHOWN]) or "none")]


async def purge_preview(bot, older_than: int = DEFAULT_DAYS) -> str:
    upkeep = _upkeep(bot)
    size = await measure(upkeep.media_store)
    cached = human_bytes(size.remote) if size.readable else "an unknown amount"
    return (f"Deletes the cached copies of other servers' media that nobody opened for {older_than} day(s) "
            f"(the cache holds {cached} now). They are fetched again if someone opens them; uploads from this "
            "server stay.")


@command("matrix purge-remote-media", group="system", help="delete cached copies of other servers' media not opened for N days "
                                           "(default 30d; another admin approves)",
         dangerous=True, locks={"homeserver-media"}, preview=purge_preview)
async def matrix_purge_remote_media(
        ctx: Context, *,
        older_than: Annotated[Days, Arg(help="e.g. 30d; 0d empties the cache", metavar="days")] = Days(DEFAULT_DAYS),
) -> Reply:
    upkeep = _upkeep(ctx)
    await ctx.job.progress("measuring the media cache")
    before = await upkeep.measured()
    await ctx.job.progress(f"purging cached media not opened for {older_than} day(s)")
    try:
        async with upkeep.api() as api:
            deleted = await api.purge_remote_cache(older_than)
    except (SynapseMediaError, UpkeepError) as exc:
        raise UserError(exc.what, exc.todo) from None
    after = await upkeep.measured()
    if not before.readable or not after.readable:
        return Reply.text(f"✅ Purged {deleted} cached media item(s) not opened for {older_than} day(s); I cannot "
                          f"measure what that freed ({after.error or before.error}).")
    freed = max(0, before.remote - after.remote)
    return Reply.text(f"✅ Purged {deleted} cached media item(s) not opened for {older_than} day(s): freed "
                      f"{human_bytes(freed)}.\n" + "\n".join(size_lines(after, None)))
