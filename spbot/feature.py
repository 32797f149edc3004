"""A feature is one unit: its config section and settings, its service, start and stop, scheduled work,
!status lines and `spbot doctor` checks. The runtime knows features only through this shape; the list
of features the bot runs is `spbot/features/__init__.py` (adding a feature: one package, one line there).

    class DiskFeature(Feature):
        name = "disk"                         # its config section [disk] and its name in logs
        settings_model = DiskSettings         # validated from [disk]; defaults when the section is absent

        async def start(self) -> None:        # after the bot has logged in and its parts have started
            self.watch = DiskWatch(self.host, self.settings)
            await self.watch.start()

        def scheduled(self) -> list[Scheduled]:
            return [Scheduled("disk-sampler", "disk sampler and alerts", self.watch.tick,
                              interval=self.settings.sample_interval, first_in=1)]

        async def status_lines(self) -> list[str]:
            return [f"disk: {await self.watch.summary()}"]

A command reaches its feature with `ctx.feature(DiskFeature)`, never through the whole bot.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, ClassVar, Protocol, TypeVar

from pydantic import BaseModel

from .config import Config, ConfigError
from .logs import get_logger
from .request import UserError


@dataclass(frozen=True)
class Scheduled:
    """One piece of scheduled work: on a cron expression (in the bot's timezone) or every `interval` s."""
    id: str
    name: str
    run: Callable[[], Awaitable[Any]]
    cron: str | None = None
    interval: float | None = None
    first_in: float | None = None        # for an interval: the first run this many seconds after start

    def add_to(self, scheduler, tz: str) -> None:
        from .scheduler import cron_trigger
        if self.cron is not None:
            scheduler.add_job(self.run, cron_trigger(self.cron, tz), id=self.id, name=self.name,
                              replace_existing=True, misfire_grace_time=3600, coalesce=True)
            return
        first = None if self.first_in is None else datetime.now(timezone.utc) + timedelta(seconds=self.first_in)
        scheduler.add_job(self.run, "interval", seconds=self.interval, id=self.id, name=self.name,
                          replace_existing=True, next_run_time=first, coalesce=True, max_instances=1)


@dataclass(frozen=True)
class Check:
    """One line of `spbot doctor`: ok, warn or fail, with what to do when it is not ok."""
    state: str                 # "ok" | "warn" | "fail"
    text: str
    todo: str = ""


class Host(Protocol):
    """What a feature may use of the runtime (the bot provides it); nothing else is reachable."""
    config: "Config"
    store: Any
    scheduler: Any
    alerts: Any
    outbox: Any                  # undelivered(ids): whether messages reached the homeserver
    connection: Any              # online / offline: asyncio events of the homeserver connection
    jobs: Any                    # run_scheduled(...): scheduled work as a job, with its locks
    messenger: Any               # reply, send, edit, notify, direct_message (spbot/messenger.py)
    addressing: Any              # this bot's host name among the bots of its room (spbot/parsing.py)
    dispatcher: Any              # fleet_answers: where a command for every bot hands its answer
    event_hooks: list            # async (room, event): the rooms' other events (the fleet's own)

    async def send_reply(self, request: Any, reply: Any) -> int: ...

    async def notify(self, reply: Any, rooms: list[str] | None = None) -> list[int]: ...
    async def direct_message(self, user_id: str, reply: Any, secret: bool = False) -> int: ...
    def admin_rooms(self) -> list[str]: ...
    def spawn(self, coro: Any, name: str) -> Any: ...
    def feature(self, kind: type["F"]) -> "F": ...


F = TypeVar("F", bound="Feature")
log = get_logger(__name__)
RESTART_TODO = "Fix it (the details are in my log), then restart me (systemctl restart spbot)."


def failure_text(exc: Exception) -> str:
    """Why a feature failed to start, for the room: a config problem as it is, anything else by kind
    only (its message may hold what the room should not see; the log has it)."""
    if isinstance(exc, ConfigError):
        return "; ".join(exc.problems)
    return f"an internal error ({exc.__class__.__name__})"


class Feature:
    name: ClassVar[str]
    title: ClassVar[str | None] = None     # its heading in `spbot doctor` when not its name
    settings_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, host: Host, settings: BaseModel | None):
        self.host = host
        self.settings = settings

    @classmethod
    def create(cls, host: Host, config: "Config") -> "Feature":
        settings = config.settings(cls.name) if cls.settings_model is not None else None
        return cls(host, settings)

    async def start(self) -> None:
        """Called once, after login and before the first command runs."""

    async def after_start(self) -> None:
        """Called once every feature has started (for what needs another feature's part), before the
        first command runs; an error here is logged and leaves the feature running."""

    async def stop(self) -> None:
        """Called once when the bot stops: end loops, close clients."""

    def scheduled(self) -> list[Scheduled]:
        return []

    async def status_lines(self) -> list[str]:
        return []

    @classmethod
    async def doctor(cls, config: "Config") -> list[Check]:
        """Set-up checks for `spbot doctor` (runs without the bot: no host)."""
        return []


class FeatureNotRunning(UserError, LookupError):
    """A feature that failed at start: its commands say why (a LookupError to the features that can do
    without it)."""


class Features:
    """The running features, in list order: started in order, stopped in reverse. One that fails to
    start is left out and kept in `failed` with why: the others and the chat channel still run, and the
    admins are told (spbot/bot.py)."""

    def __init__(self, kinds: list[type[Feature]]):
        self.kinds = list(kinds)
        self.running: dict[type[Feature], Feature] = {}
        self.failed: dict[type[Feature], str] = {}

    async def start(self, host: Host) -> None:
        for kind in self.kinds:
            started = None
            try:
                feature = kind.create(host, host.config)
                await feature.start()
                started = feature
                work = feature.scheduled()
            except Exception as exc:
                self.failed[kind] = failure_text(exc)
                log.exception("feature_not_started", feature=kind.name)
                if started is not None:
                    await self._logged(started, "stop")     # what its start() set going
                continue
            self.running[kind] = feature
            for one in work:
                one.add_to(host.scheduler, host.config.timezone)
        for feature in list(self.running.values()):
            await self._logged(feature, "after_start")

    async def stop(self) -> None:
        """Each feature, even when one before it fails to stop (the bot still flushes its outbox)."""
        for feature in reversed(list(self.running.values())):
            await self._logged(feature, "stop")

    @staticmethod
    async def _logged(feature: Feature, step: str) -> None:
        """feature.<step>(); an error is logged (feature_<step>_failed) and the others go on."""
        try:
            await getattr(feature, step)()
        except Exception:
            log.exception(f"feature_{step}_failed", feature=feature.name)

    def get(self, kind: type[F]) -> F:
        if kind in self.failed:
            raise FeatureNotRunning(f"[{kind.name}] did not start: {self.failed[kind]}", RESTART_TODO)
        try:
            return self.running[kind]        # type: ignore[return-value]
        except KeyError:
            raise LookupError(f"feature {kind.__name__} is not running in this bot") from None

    async def status_lines(self) -> list[str]:
        lines = [f"⚠️ {kind.name}: not running, it did not start: {why}" for kind, why in self.failed.items()]
        for feature in self.running.values():
            lines.extend(await feature.status_lines())
        return lines
