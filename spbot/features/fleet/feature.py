"""FleetFeature: joins this bot to the others of its room ([fleet] peers). Built only when the config
names this host and at least one peer; alone, the bot behaves as it always did."""
from __future__ import annotations

from spbot.config import FleetSettings
from spbot.feature import Check, Feature, Scheduled
from spbot.logs import get_logger

from .gather import ANSWER, GATHERED, Gatherer
from .overview import one_line
from .peers import PeerTrust
from .watch import Watch
from .wire import Wire

log = get_logger(__name__)


class FleetFeature(Feature):
    name = "fleet"
    settings_model = FleetSettings
    settings: FleetSettings

    @property
    def active(self) -> bool:
        return bool(self.host.config.host) and bool(self.settings.peers)

    async def start(self) -> None:
        if not self.active:
            return
        addressing = self.host.addressing
        self.wire = Wire(self.host, addressing.me, self.settings.peers)
        self.watch = Watch(self.host, self.wire, self.settings)
        await self.watch.start()
        self.gatherer = Gatherer(self.host, self.wire, addressing.hosts, addressing.default,
                                 self.settings.answer_timeout, self.watch.live, self.watch.silence)
        addressing.live = self.watch.live
        self.host.dispatcher.fleet_answers = self.gatherer.publish
        self.host.event_hooks.append(self.on_event)
        self._follow_device_changes()
        log.info("fleet_joined", host=addressing.me, peers=sorted(self.settings.peers),
                 default=addressing.default)

    def _follow_device_changes(self) -> None:
        """A peer's identity or devices changed in a sync: look them up again before trusting it (after
        whatever else listens)."""
        connection, before = self.host.connection, self.host.connection.on_device_changes

        def changed(user_ids: list[str]) -> None:
            if before is not None:
                before(user_ids)
            self.wire.trust.forget_cached(user_ids)
        connection.on_device_changes = changed

    async def on_event(self, room, event) -> None:
        fleet_event = await self.wire.read(room, event)
        if fleet_event is None:
            return
        await self.watch.on_event(fleet_event)
        if fleet_event.kind == ANSWER:
            await self.gatherer.on_answer(fleet_event)
        elif fleet_event.kind == GATHERED:
            self.gatherer.on_gathered(fleet_event)

    def scheduled(self) -> list[Scheduled]:
        if not self.active:
            return []
        every = self.settings.heartbeat_interval
        return [Scheduled("fleet-heartbeat", "fleet heartbeat", self.watch.beat, interval=every, first_in=1),
                Scheduled("fleet-silence", "fleet silence check", self.watch.check,
                          interval=max(0.5, min(every, self.settings.silent_after / 4)), first_in=2)]

    async def line(self) -> str:
        return await one_line(self.host, self.host.config.host or "this server")

    @property
    def trust(self) -> PeerTrust | None:
        """The peer bots' identities (None when this bot is not in a fleet)."""
        return self.wire.trust if self.active else None

    async def stop(self) -> None:
        if self.active and hasattr(self, "wire"):
            await self.wire.trust.close()

    async def status_lines(self) -> list[str]:
        if not self.active:
            return []
        silent = [f"{h} ({self.watch.silence(h)})" for h in self.watch.peers if self.watch.silence(h)]
        return [f"fleet: {self.host.config.host} among {', '.join(sorted(self.settings.peers))}; "
                f"silent: {', '.join(silent) or 'none'}"]

    @classmethod
    async def doctor(cls, config) -> list[Check]:
        settings: FleetSettings = config.settings(cls.name)
        if not settings.peers:
            return []
        if not config.host:
            return [Check("fail", "[fleet] peers are set but this bot has no host name",
                          "set host = \"nas\" (a short name) at the top of the config")]
        if config.host in settings.peers:
            return [Check("fail", f"[fleet] peers lists this bot's own host {config.host}",
                          "list only the other bots in [fleet] peers")]
        return [Check("ok", f"fleet: {config.host} with {', '.join(sorted(settings.peers))}")]
