"""systemd units the admins care about: state, restart, failed units; and a short system summary.

Only units listed in `ServicesParams.units` can be inspected or restarted, and every name is
checked against a strict pattern before any process starts. systemctl always gets argument
lists with `--` before unit names.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psutil
from pydantic import Field, field_validator

from spbot.system import disks
from spbot.system.proc import ProcError, ProcResult, run
from spbot.model import Model

_UNIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._:-]*\.(service|timer|socket|target|mount|path)$")
_BARE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._:-]*$")
PROPERTIES = ("Id", "ActiveState", "SubState", "LoadState", "ActiveEnterTimestamp",
              "MemoryCurrent", "Result")


class UnitNameError(ValueError):
    """A unit name that is malformed or not configured; the message is safe to show."""


class ServiceError(Exception):
    """systemctl could not answer or act; the message is safe to show."""


def normalize_unit(name: str) -> str:
    """'nginx' → 'nginx.service'; 'backup.timer' stays; anything else raises UnitNameError."""
    name = name.strip()
    if len(name) > 200:
        raise UnitNameError("unit name is too long")
    if _UNIT.match(name):
        return name
    if _BARE.match(name) and not name.endswith("."):
        return f"{name}.service"
    raise UnitNameError(f"{name!r} is not a valid unit name (letters, digits, @ . _ : - and a "
                        f"suffix such as .service)")


class ServicesParams(Model):
    """The `[services]` settings: which units may be shown and restarted."""
    units: list[str] = Field(
        default_factory=list, examples=[["nginx.service", "postgresql.service"]],
        description="The systemd units !services shows and !service restart may restart.")
    tool_path: str | None = Field(
        None,
        description="PATH to find systemctl in (unset: the bot's).")
    timeout: float = Field(15.0, gt=0, description="Seconds one systemctl query may take.")
    restart_timeout: float = Field(120.0, gt=0, description="Seconds a restart may take.")

    @field_validator("units")
    @classmethod
    def _valid_units(cls, units: list[str]) -> list[str]:
        return list(dict.fromkeys(normalize_unit(u) for u in units))

    def allowed(self, name: str) -> str:
        """The normalized unit if it is valid and configured; UnitNameError otherwise."""
        unit = normalize_unit(name)
        if unit not in self.units:
            raise UnitNameError(f"{unit} is not one of the configured units: "
                                + (", ".join(self.units) or "none configured"))
        return unit


class UnitState(Model):
    unit: str
    load_state: str = ""
    active_state: str = ""
    sub_state: str = ""
    result: str = ""
    active_since: datetime | None = None
    memory_bytes: int | None = None

    @property
    def healthy(self) -> bool:
        return self.load_state == "loaded" and self.active_state == "active"

    @property
    def found(self) -> bool:
        return self.load_state not in ("not-found", "")


class FailedUnit(Model):
    unit: str
    load_state: str
    active_state: str
    sub_state: str
    description: str = ""


class SystemSummary(Model):
    boot_time: datetime
    uptime_seconds: float
    load_1: float
    load_5: float
    load_15: float
    cpu_count: int
    memory_total: int
    memory_available: int
    memory_percent: float
    swap_total: int
    swap_used: int
    swap_percent: float


# --------------------------------------------------------------------------- parsing

_TIMESTAMP = re.compile(r"^(?:[A-Za-z]{3} )?(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?: (\S+))?$")


def _zone(name: str | None):
    """The zone for systemd's abbreviation; None means the machine's local zone."""
    if name in ("UTC", "GMT", "Z"):
        return timezone.utc
    if name is None or name in time.tzname:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_timestamp(value: str) -> datetime | None:
    """'Mon 2026-11-23 10:00:01 UTC' or '@1795428001' → aware datetime; '' or 'n/a' → None."""
    value = value.strip()
    if value.startswith("@") and value[1:].isdigit():
        return datetime.fromtimestamp(int(value[1:]), timezone.utc)
    match = _TIMESTAMP.match(value)
    if not match:
        return None
    naive = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
    zone = _zone(match.group(2))
    return naive.replace(tzinfo=zone) if zone is not None else naive.astimezone()


def _number(value: str) -> int | None:
    return int(value) if value.isdigit() else None  # '[not set]', 'infinity', ''


def parse_show(output: str) -> list[dict[str, str]]:
    """`systemctl show` output → one {property: value} dict per unit (blocks split by blank lines)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in output.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            current[key] = value
    if current:
        blocks.append(current)
    return blocks


def unit_state_from(props: dict[str, str], unit: str) -> UnitState:
    return UnitState(
        unit=props.get("Id") or unit,
        load_state=props.get("LoadState", ""),
        active_state=props.get("ActiveState", ""),
        sub_state=props.get("SubState", ""),
        result=props.get("Result", ""),
        active_since=parse_timestamp(props.get("ActiveEnterTimestamp", "")),
        memory_bytes=_number(props.get("MemoryCurrent", "")),
    )


def parse_failed(output: str) -> list[FailedUnit]:
    """`systemctl list-units --state=failed --plain --no-legend` lines → FailedUnit."""
    units = []
    for line in output.splitlines():
        fields = line.strip().lstrip("●*").split(None, 4)
        if len(fields) >= 4:
            units.append(FailedUnit(unit=fields[0], load_state=fields[1], active_state=fields[2],
                                    sub_state=fields[3], description=fields[4] if len(fields) > 4 else ""))
    return units


# --------------------------------------------------------------------------- systemctl

async def _systemctl(params: ServicesParams, *args: str, timeout: float | None = None) -> ProcResult:
    search = params.tool_path if params.tool_path is not None else os.environ.get("PATH", "")
    exe = shutil.which("systemctl", path=search)
    if exe is None:
        raise ServiceError("systemctl is not installed (not found on PATH)")
    env = {**os.environ, "PATH": search, "LC_ALL": "C", "LANG": "C", "SYSTEMD_COLORS": "0"}
    try:
        result = await run([exe, *args], timeout=timeout or params.timeout, env=env)
    except ProcError as exc:
        raise ServiceError(str(exc)) from exc
    if result.timed_out:
        raise ServiceError(f"systemctl {args[0]} did not answer within {result.duration:.0f}s")
    return result


async def unit_states(params: ServicesParams, units: list[str] | None = None) -> list[UnitState]:
    """State of the given configured units (default: all configured), one systemctl call."""
    names = [params.allowed(u) for u in units] if units is not None else list(params.units)
    if not names:
        return []
    result = await _systemctl(params, "show", f"--property={','.join(PROPERTIES)}", "--no-pager",
                              "--", *names)
    if not result.ok:
        raise ServiceError(f"systemctl show failed (exit {result.returncode}): {result.tail(2)}")
    blocks = parse_show(result.stdout)
    by_id = {b.get("Id"): b for b in blocks}
    if len(blocks) == len(names) and not all(n in by_id for n in names):
        by_id = dict(zip(names, blocks))  # aliases: systemctl answers with the real Id
    return [unit_state_from(by_id.get(name, {}), name) for name in names]


async def unit_state(params: ServicesParams, unit: str) -> UnitState:
    return (await unit_states(params, [unit]))[0]


async def restart(params: ServicesParams, unit: str) -> UnitState:
    """`systemctl restart -- unit` for a configured unit; returns its state afterwards."""
    name = params.allowed(unit)
    await act(params, "restart", [name])
    return await unit_state(params, name)


async def act(params: ServicesParams, action: str, units: list[str]) -> None:
    """`systemctl start|stop|restart -- units…` for configured units, in one call."""
    if action not in ("start", "stop", "restart"):
        raise ValueError(action)
    names = [params.allowed(u) for u in units]
    result = await _systemctl(params, action, "--", *names, timeout=params.restart_timeout)
    if not result.ok:
        verb = {"start": "starting", "stop": "stopping", "restart": "restarting"}[action]
        raise ServiceError(f"{verb} {' '.join(names)} failed (exit {result.returncode}): {result.tail(3)}")


async def failed_units(params: ServicesParams) -> list[FailedUnit]:
    """Every failed unit on the machine (configured or not)."""
    result = await _systemctl(params, "list-units", "--state=failed", "--plain", "--no-legend",
                              "--no-pager")
    if not result.ok:
        raise ServiceError(f"systemctl list-units failed (exit {result.returncode}): {result.tail(2)}")
    return parse_failed(result.stdout)


# --------------------------------------------------------------------------- summary

def _summary() -> SystemSummary:
    boot = psutil.boot_time()
    load = psutil.getloadavg()
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    return SystemSummary(
        boot_time=datetime.fromtimestamp(boot, timezone.utc), uptime_seconds=time.time() - boot,
        load_1=load[0], load_5=load[1], load_15=load[2], cpu_count=psutil.cpu_count() or 1,
        memory_total=memory.total, memory_available=memory.available, memory_percent=memory.percent,
        swap_total=swap.total, swap_used=swap.used, swap_percent=swap.percent,
    )


async def system_summary(timeout: float = 10.0) -> SystemSummary:
    """Uptime, load and memory (psutil, in a thread)."""
    return await disks.in_thread(_summary, timeout=timeout)
