"""The family homeserver's own upkeep: its media store (measured, sampled for growth), its database size,
who and which rooms hold the most media (Synapse's admin API), the purge of the cache of other servers'
media, and the offer a disk alert makes when the full mount holds the media store."""
from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

from spbot.config import ConfigError
from spbot.logs import get_logger, register_secret
from spbot.providers.synapse_media import SynapseMedia
from spbot.render import human_bytes

from ..definition import Definition
from .media_store import MediaSamples, MediaStoreSize, measure, size_lines

log = get_logger(__name__)
SAMPLE_INTERVAL = 6 * 3600.0
OFFER_DAYS = 30


class UpkeepError(Exception):
    """The upkeep cannot be done as set up: `what` went wrong, `todo` says what to do next."""

    def __init__(self, what: str, todo: str = ""):
        super().__init__(what)
        self.what, self.todo = what, todo


@dataclass(frozen=True)
class PurgeOffer:
    """What a disk alert offers when the full mount holds the media store: purge the remote cache."""
    mount: str
    cached: int
    days: int = OFFER_DAYS

    @property
    def command(self) -> str:
        return f"!matrix purge-remote-media --older-than {self.days}d"

    @property
    def alert_line(self) -> str:
        return (f"The homeserver's cache of other servers' media takes {human_bytes(self.cached)} here: react ✅ "
                f"to purge what nobody opened for {self.days} days (another admin approves), or send "
                f"{self.command}.")


class HomeserverUpkeep:
    """For the enabled service that is the family's Synapse with a media store."""

    def __init__(self, host, spec: Definition):
        self.host, self.spec = host, spec
        self.media_store: Path = spec.media_store
        self.samples = MediaSamples(host.store)

    async def start(self) -> None:
        await self.samples.start()

    async def sample(self) -> None:
        """The scheduled sampler: measure and record. Never raises."""
        try:
            await self.measured()
        except Exception:
            log.exception("media_store_sample_failed")

    async def measured(self, now: float | None = None) -> MediaStoreSize:
        now = time.time() if now is None else now
        size = await measure(self.media_store)
        await self.samples.record(size, now)
        return size

    async def store_lines(self, now: float | None = None) -> list[str]:
        """The media store's two halves with their growth, and the database size (for !service synapse)."""
        now = time.time() if now is None else now
        size = await self.measured(now)
        lines = size_lines(size, await self.samples.growth(size, now))
        return lines + [await self.database_line()]

    async def database_line(self) -> str:
        db = self.spec.database
        if db is None:
            return "database size: unknown (no database in the definition)"
        if db.kind == "sqlite":
            try:
                size = await asyncio.to_thread(_sqlite_size, Path(db.path))
            except OSError as exc:
                return f"database size: cannot read {db.path} ({exc.strerror or exc})"
            return f"database size: {human_bytes(size)} (SQLite)"
        if db.kind == "postgresql":
            return f"database size: {await _postgres_size(db)}"
        return f"database size: not measured for {db.describe()}"

    def api(self) -> SynapseMedia:
        """The media admin API, with [users]' admin token or the bot's own (a homeserver admin)."""
        from ...users import UsersFeature            # the users feature knows how the admin API is reached
        users = self.host.feature(UsersFeature)
        settings = users.settings
        try:
            token = settings.admin_token.read() if settings.admin_token else self.host.connection.client.access_token
        except ConfigError as exc:
            raise UpkeepError(f"The admin token for [users] cannot be read: {exc}",
                              "Fix admin_token in the bot's configuration and restart the bot.") from None
        register_secret(token)
        return SynapseMedia(settings.admin_api_url or self.host.config.homeserver, token, users.server_name(),
                            timeout=settings.timeout)

    async def purge_offer(self, mount: str) -> PurgeOffer | None:
        """The offer for a full `mount` when it holds the media store and the cache is worth purging."""
        from ...disk import DiskFeature
        try:
            holding = await self.host.feature(DiskFeature).usage(str(self.media_store))
        except Exception as exc:       # the alert must go out anyway
            log.info("no_purge_offer", mount=mount, reason=str(exc)[:200])
            return None
        if not holding or mount not in (holding[0].mountpoint, *holding[0].also_mounted_at):
            return None
        size = await measure(self.media_store)
        return PurgeOffer(mount, size.remote) if size.readable and size.remote > 0 else None


def _sqlite_size(path: Path) -> int:
    """The database file and its write-ahead log, allocated bytes (OSError when the file is not there)."""
    size = os.stat(path).st_blocks * 512
    try:
        return size + os.stat(f"{path}-wal").st_blocks * 512
    except FileNotFoundError:
        return size


async def _postgres_size(db) -> str:
    """pg_database_size through psql as the database's system user (runuser when the bot is root)."""
    psql = str(db.tool_dir / "psql") if db.tool_dir else "psql"
    argv = [psql, "-XtA", "-c", "SELECT pg_database_size(current_database())"]
    argv += [*(["-h", db.host] if db.host else []), *(["-p", str(db.port)] if db.port else []), "--", db.name]
    if db.user and os.geteuid() == 0:
        argv = ["runuser", "-u", db.user, "--", *argv]
    try:
        process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        return f"cannot ask PostgreSQL ({exc.strerror or exc})"
    try:
        out, err = await asyncio.wait_for(process.communicate(), 20)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        return "cannot ask PostgreSQL (no answer within 20 s)"
    text = out.decode(errors="replace").strip()
    if process.returncode != 0 or not text.isdigit():
        return f"cannot ask PostgreSQL ({err.decode(errors='replace').strip()[:120] or 'psql failed'})"
    return f"{human_bytes(int(text))} (PostgreSQL {db.name})"
