"""The services feature: [services] (the units !services shows and !service restart may restart) and
[health] (the failed-units and certificate checks that alert), and the server lines of !status."""
from __future__ import annotations

import asyncio

from spbot.feature import Feature, Scheduled
from spbot.features.backup import BackupFeature, ServiceSettings, Stopper
from spbot.logs import get_logger
from spbot.render import human_bytes, human_duration
from spbot.system import disks
from spbot.system.services import ServiceError, system_summary

from .definition import Definition
from .enabled import resolve
from .render import backup_text
from .settings import EnabledName, HealthSettings, ServicesSettings, ServiceTarget, UnitName
from .state import Controller
from .service_watch import ServiceWatch
from .synapse import HomeserverUpkeep
from .synapse.upkeep import SAMPLE_INTERVAL
from .watch import HealthWatch

log = get_logger(__name__)
SOON = 2.0         # the checks' first run, seconds after start
RESTORE_HEALTH_WAIT = 60.0


class ServicesFeature(Feature):
    name = "services"
    settings_model = ServicesSettings
    settings: ServicesSettings

    def __init__(self, host, settings: ServicesSettings):
        super().__init__(host, settings)
        self.health: HealthSettings = host.config.settings("health")
        self.watch = HealthWatch(host, self.health, settings)
        self.controller = Controller(settings.tool_path, settings.timeout, settings.restart_timeout)
        self.services: dict[str, Definition] = {
            name: resolve(name, config, settings.root / "etc/NIXOS") for name, config in settings.enabled.items()}
        self.service_watch = ServiceWatch(host, self.controller, self.services,
                                          {n: c.unhealthy_after for n, c in settings.enabled.items()},
                                          self.health.renotify)
        self.watch.covered = self.service_watch.units()
        homeservers = [spec for spec in self.services.values() if spec.media_store is not None]
        self.homeserver: HomeserverUpkeep | None = HomeserverUpkeep(host, homeservers[0]) if homeservers else None

    async def start(self) -> None:
        UnitName.configured = self.settings
        ServiceTarget.enabled = EnabledName.enabled = frozenset(self.services)
        self._add_backups()
        if self.homeserver is not None:
            await self.homeserver.start()
        s = self.health
        if s.failed_units_interval > 0 and not self.watch.systemd_running():
            log.info("failed_units_not_checked", reason=f"{s.systemd_dir} is missing: systemd does not run "
                                                        "this machine")

    def _add_backups(self) -> None:
        """Each enabled service with data is backed up as service:<name>, its database dumped, its units
        stopped during a restore and its health checked afterwards."""
        if not self.services:
            return
        try:
            backup = self.host.feature(BackupFeature)
        except LookupError:
            return
        specs, checks, stoppers = {}, {}, {}
        for name, spec in self.services.items():
            if not self.settings.enabled[name].backup or not spec.data_paths:
                continue
            specs[name] = ServiceSettings(paths=spec.data_paths, excludes=spec.excludes,
                                          units=spec.restore_stops, database=spec.database)
            checks[name] = self._checker(spec)
            if spec.in_containers and not spec.restore_stops:
                stoppers[name] = self._stopper(spec)
        if specs:
            backup.add_services(specs, checks, stoppers)

    def _stopper(self, spec: Definition) -> Stopper:
        names = spec.containers + ([f"compose project {spec.compose_project}"] if spec.compose_project else [])
        return Stopper(f"container(s) {', '.join(names)}", lambda: self.controller.act(spec, "stop"),
                       lambda: self.controller.act(spec, "start"))

    def _checker(self, spec: Definition):
        async def check() -> str:
            state = await self.controller.healthy_within(spec, RESTORE_HEALTH_WAIT)
            return f"{'✅' if state.healthy else '⚠️'} {spec.name}: {state.health_text()}"
        return check

    def scheduled(self) -> list[Scheduled]:
        s, work = self.health, []
        if s.failed_units_interval > 0 and self.watch.systemd_running():
            work.append(Scheduled("health-failed-units", "failed units check", self.watch.check_units,
                                  interval=s.failed_units_interval, first_in=SOON))
        if self.services and self.settings.check_interval > 0:
            work.append(Scheduled("services-check", "service checks", self.service_watch.check,
                                  interval=self.settings.check_interval, first_in=SOON))
        if self.homeserver is not None:
            work.append(Scheduled("media-store-sampler", "homeserver media store sampler", self.homeserver.sample,
                                  interval=SAMPLE_INTERVAL, first_in=SOON))
        if s.tls_domains and s.tls_interval > 0:
            work.append(Scheduled("health-tls", "certificate check", self.watch.check_tls,
                                  interval=s.tls_interval, first_in=SOON))
        return work

    async def status_lines(self) -> list[str]:
        lines = []
        try:
            s = await system_summary()
            lines.append(f"server: up {human_duration(s.uptime_seconds)} · load {s.load_1:.2f} {s.load_5:.2f} "
                         f"{s.load_15:.2f} ({s.cpu_count} CPUs) · memory "
                         f"{human_bytes(s.memory_total - s.memory_available)} of {human_bytes(s.memory_total)} "
                         f"used ({s.memory_percent:.0f}%)")
        except (disks.ProbeTimeout, OSError) as exc:
            lines.append(f"server: cannot read uptime, load and memory ({exc})")
        lines.append("failed units: " + await self._failed_text())
        if self.services:
            lines.append(await self._services_line())
        return lines

    async def _services_line(self) -> str:
        """Enabled catalogue services: how many run healthy, and the names of the others."""
        states = await asyncio.gather(*(self.controller.state(spec) for spec in self.services.values()))
        bad = [state.name for state in states if not state.healthy]
        text = f"services: {len(states) - len(bad)} running"
        return text + (f", {len(bad)} failing ({', '.join(bad)}) ❌" if bad else ", none failing")

    async def _failed_text(self) -> str:
        if not self.watch.systemd_running():
            return "not checked (systemd does not run this machine)"
        try:
            failed = await self.watch.failed()
        except ServiceError as exc:
            return f"cannot check ({exc})"
        return ", ".join(u.unit for u in failed) + " ❌" if failed else "none"

    async def last_backups(self) -> dict[str, str]:
        """The last successful backup of each enabled service: '3 h ago', 'never' or 'not backed up'."""
        try:
            log = self.host.feature(BackupFeature).backups.log
        except LookupError:
            return {}
        texts = {}
        for name in self.services:
            enabled = self.settings.enabled[name].backup
            row = await log.last_success(name) if enabled else None
            texts[name] = backup_text(row["ended"] if row else None, enabled)
        return texts
