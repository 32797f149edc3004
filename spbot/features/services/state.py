"""What an enabled service is doing now: its units (systemctl show) or containers (docker inspect), since
when, how much memory, and its health check; and starting, stopping, restarting it."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from spbot.system.services import ServiceError, ServicesParams, UnitState, act, unit_states

from .definition import Definition
from .docker import ContainerState, Docker
from .health import HttpResult, check_http


@dataclass
class ServiceState:
    spec: Definition
    units: list[UnitState] = field(default_factory=list)
    containers: list[ContainerState] = field(default_factory=list)
    http: HttpResult | None = None
    error: str = ""                    # systemctl or docker could not answer

    @property
    def name(self) -> str:
        return self.spec.name

    def down(self) -> list[str]:
        """The units and containers that should run and do not."""
        bad = [u.unit for u in self.units if not u.healthy and (u.unit in self.spec.units or u.found)]
        return bad + [c.name for c in self.containers if not c.healthy]

    @property
    def running(self) -> bool:
        return not self.error and not self.down()

    @property
    def healthy(self) -> bool:
        return self.running and (self.http is None or self.http.ok)

    @property
    def since(self) -> datetime | None:
        times = [u.active_since for u in self.units if u.unit in self.spec.units and u.active_since]
        times += [c.started for c in self.containers if c.started]
        return max(times) if times else None

    @property
    def memory(self) -> int | None:
        sizes = [u.memory_bytes for u in self.units if u.memory_bytes is not None]
        sizes += [c.memory_bytes for c in self.containers if c.memory_bytes is not None]
        return sum(sizes) if sizes else None

    def health_text(self) -> str:
        if self.error:
            return f"cannot tell: {self.error}"
        if self.down():
            return f"not running: {', '.join(self.down())}"
        if self.http is not None:
            return self.http.text if self.http.ok else f"failing: {self.http.text}"
        return "running (no HTTP check)"


class Controller:
    """The machine side of enabled services: systemctl and docker with the [services] tool path."""

    def __init__(self, tool_path: str | None, timeout: float, action_timeout: float):
        self.tool_path, self.timeout, self.action_timeout = tool_path, timeout, action_timeout
        self.docker = Docker(tool_path, timeout, action_timeout)

    def _params(self, units: list[str]) -> ServicesParams:
        return ServicesParams(units=units, tool_path=self.tool_path, timeout=self.timeout,
                              restart_timeout=self.action_timeout)

    async def containers(self, spec: Definition) -> list[str]:
        names = list(spec.containers)
        if spec.compose_project:
            names += [n for n in await self.docker.project(spec.compose_project) if n not in names]
        return names

    async def state(self, spec: Definition, *, http: bool = True) -> ServiceState:
        state = ServiceState(spec)
        try:
            if spec.all_units:
                found = await unit_states(self._params(spec.all_units))
                state.units = [u for u in found if u.unit in spec.units or u.found]
            if spec.in_containers:
                state.containers = await self.docker.states(await self.containers(spec))
                if spec.compose_project and not state.containers:
                    state.error = f"compose project {spec.compose_project} has no containers"
        except ServiceError as exc:
            state.error = str(exc)
        if http and state.running:
            state.http = await check_http(spec.health)
        return state

    async def act(self, spec: Definition, action: str) -> None:
        """start, stop or restart the service's units (the ones present) and containers."""
        if spec.all_units:
            present = [u.unit for u in await unit_states(self._params(spec.all_units)) if u.found]
            units = [u for u in spec.units if u in present] + [u for u in spec.optional_units if u in present]
            if units:
                await act(self._params(units), action, units)
        if spec.in_containers:
            names = await self.containers(spec)
            if names:
                await self.docker.act(action, names)

    async def healthy_within(self, spec: Definition, seconds: float) -> ServiceState:
        """Its state once healthy, or after `seconds` (a service takes a moment to answer after a start)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while True:
            state = await self.state(spec)
            if state.healthy or loop.time() >= end:
                return state
            await asyncio.sleep(1.0)
