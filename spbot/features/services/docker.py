"""Containers through the docker CLI (the services feature's own adapter): state from `docker inspect`,
memory from `docker stats`, the containers of a compose project, logs, start/stop/restart. Names are
checked by the definition's pattern before they get here, and always follow `--`-free fixed argv."""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime

from spbot.system.proc import ProcError, ProcResult, run
from spbot.system.services import ServiceError

_SIZE = re.compile(r"^\s*([\d.]+)\s*([KMGT]?i?B)\s*$")
_FACTORS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
            "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}


@dataclass
class ContainerState:
    name: str
    found: bool = True
    status: str = ""                 # created, running, restarting, exited, paused, dead
    health: str = ""                 # the image's own HEALTHCHECK: healthy, unhealthy, starting, ""
    started: datetime | None = None
    exit_code: int = 0
    memory_bytes: int | None = None

    @property
    def healthy(self) -> bool:
        return self.found and self.status == "running" and self.health in ("", "healthy")


class Docker:
    def __init__(self, tool_path: str | None, timeout: float = 15.0, action_timeout: float = 120.0):
        self.tool_path = tool_path
        self.timeout = timeout
        self.action_timeout = action_timeout

    async def _docker(self, *args: str, timeout: float | None = None) -> ProcResult:
        search = self.tool_path if self.tool_path is not None else os.environ.get("PATH", "")
        exe = shutil.which("docker", path=search)
        if exe is None:
            raise ServiceError("docker is not installed (not found on PATH)")
        try:
            result = await run([exe, *args], timeout=timeout or self.timeout,
                               env={**os.environ, "PATH": search, "LC_ALL": "C"})
        except ProcError as exc:
            raise ServiceError(str(exc)) from exc
        if result.timed_out:
            raise ServiceError(f"docker {args[0]} did not answer within {result.duration:.0f}s")
        return result

    async def project(self, name: str) -> list[str]:
        """The containers of a compose project (running or not)."""
        result = await self._docker("ps", "--all", "--filter", f"label=com.docker.compose.project={name}",
                                    "--format", "{{.Names}}")
        if not result.ok:
            raise ServiceError(f"docker ps failed (exit {result.returncode}): {result.tail(2)}")
        return sorted(line.strip() for line in result.stdout.splitlines() if line.strip())

    async def states(self, names: list[str]) -> list[ContainerState]:
        if not names:
            return []
        result = await self._docker("inspect", "--type", "container", *names)
        try:
            found = {c["Name"].lstrip("/"): c for c in json.loads(result.stdout or "[]")}
        except (ValueError, KeyError, TypeError):
            raise ServiceError(f"docker inspect failed (exit {result.returncode}): {result.tail(2)}") from None
        if not result.ok and not found and "No such" not in result.stderr:
            raise ServiceError(f"docker inspect failed (exit {result.returncode}): {result.tail(2)}")
        states = [_state(name, found.get(name)) for name in names]
        running = [s.name for s in states if s.status == "running"]
        for name, size in (await self._memory(running)).items():
            for state in states:
                if state.name == name:
                    state.memory_bytes = size
        return states

    async def _memory(self, names: list[str]) -> dict[str, int]:
        if not names:
            return {}
        try:
            result = await self._docker("stats", "--no-stream", "--format", "{{json .}}", *names)
        except ServiceError:
            return {}
        sizes = {}
        for line in result.stdout.splitlines():
            try:
                row = json.loads(line)
                used = _bytes(row["MemUsage"].split("/")[0])
            except (ValueError, KeyError, AttributeError):
                continue
            if used is not None:
                sizes[row.get("Name", "")] = used
        return sizes

    async def act(self, action: str, names: list[str]) -> None:
        if action not in ("start", "stop", "restart"):
            raise ValueError(action)
        result = await self._docker(action, *names, timeout=self.action_timeout)
        if not result.ok:
            raise ServiceError(f"docker {action} {' '.join(names)} failed (exit {result.returncode}): "
                               f"{result.tail(3)}")

    async def logs(self, name: str, lines: int, since_seconds: int | None) -> str:
        args = ["logs", "--timestamps", "--tail", str(lines)]
        if since_seconds:
            args += ["--since", f"{since_seconds}s"]
        result = await self._docker(*args, name)
        if not result.ok:
            raise ServiceError(f"docker logs {name} failed (exit {result.returncode}): {result.tail(2)}")
        # the container's stdout and stderr, by their timestamps
        return "\n".join(sorted(result.stdout.splitlines() + result.stderr.splitlines()))


def _state(name: str, data: dict | None) -> ContainerState:
    if data is None:
        return ContainerState(name, found=False)
    state = data.get("State") or {}
    return ContainerState(name, status=state.get("Status", ""), health=(state.get("Health") or {}).get("Status", ""),
                          started=_time(state.get("StartedAt", "")) if state.get("Running") else None,
                          exit_code=state.get("ExitCode", 0))


def _time(value: str) -> datetime | None:
    """Docker's RFC 3339 with nanoseconds: '2026-11-23T10:00:01.123456789Z'."""
    match = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})$", value or "")
    if not match or value.startswith("0001-"):
        return None
    return datetime.fromisoformat(match.group(1) + (match.group(2).replace("Z", "+00:00")))


def _bytes(text: str) -> int | None:
    match = _SIZE.match(text)
    return int(float(match.group(1)) * _FACTORS[match.group(2)]) if match else None
