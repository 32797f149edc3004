"""Hetzner Cloud: facts, metrics and actions of the family's server through the official hcloud.

Every hcloud call is blocking and runs in `asyncio.to_thread`; waiting for an action is an
async poll loop (cancellable, never holding a thread). Errors become `HetznerError` with a
message saying what happened and what to do; the API token is never part of a message or log.

    hetzner = HetznerCloud(HetznerSettings(token=..., server="family-server"))
    facts = await hetzner.server_facts()
    plan = await hetzner.plan_resize("cx32")          # show, ask for approval, then:
    result = await hetzner.resize("cx32", expect_current=plan.current.name)
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, TypeVar

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import requests
    from hcloud import Client


def _hcloud():
    """hcloud (and requests) are imported on first use only: they cost the idle bot ~8 MiB."""
    import hcloud
    import hcloud.server_types
    import requests
    return hcloud, requests

log = logging.getLogger(__name__)

__all__ = [
    "ActionResult", "HetznerCloud", "HetznerError", "HetznerSettings", "MetricPoint",
    "MetricSeries", "Price", "ResizePlan", "ResizeResult", "RetryPolicy", "ServerFacts",
    "ServerMetrics", "ServerTypeInfo", "Snapshot", "VolumeInfo", "volume_id_for_device",
]

T = TypeVar("T")
Progress = Callable[[str], Awaitable[None]]
MetricKind = Literal["cpu", "disk", "network"]
Period = Literal["1h", "24h", "7d"]

STATUS_PAGE = "https://status.hetzner.com"
TOKEN_HELP = ("Create a new Read & Write API token in the Hetzner Cloud Console "
              "(your project → Security → API tokens) and put it in the bot's configuration.")
PERIODS: dict[str, tuple[timedelta, int]] = {  # period -> (span, step in seconds)
    "1h": (timedelta(hours=1), 60),
    "24h": (timedelta(days=1), 600),
    "7d": (timedelta(days=7), 3600),
}
OUTAGE_CODES = {"server_error", "service_error", "unavailable", "maintenance",
                "resource_unavailable", "bad_gateway", "timeout"}
VOLUME_BY_ID = re.compile(r"scsi-0HC_Volume_(\d+)(?:-part\d+)?$")


class HetznerError(Exception):
    """A Hetzner Cloud call failed; the message names what failed and what to do."""


# -- settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up on one API request."""

    max_retries: int = 5
    backoff_base: float = 1.0  # seconds; doubles per retry
    backoff_cap: float = 30.0
    rate_limit_max_wait: float = 60.0  # cap on one wait for the rate limit
    refill_seconds: float = 1.0  # Hetzner gives back one request per second


@dataclass(frozen=True)
class HetznerSettings:
    """Where and how to reach Hetzner; `server` is the managed server's name or id."""

    token: str = field(repr=False)
    server: str | int
    api_endpoint: str = "https://api.hetzner.cloud/v1"
    timeout: float = 30.0  # per HTTP request
    poll_interval: float = 1.0  # between polls of a running action
    action_timeout: float = 900.0  # give up waiting for one action after this
    shutdown_timeout: float = 120.0  # graceful shutdown before a hard power-off
    retry: RetryPolicy = RetryPolicy()


# -- models --------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Price(_Model):
    """A monthly price in EUR (Hetzner bills in EUR), without and with VAT."""

    net: Decimal
    gross: Decimal
    currency: str = "EUR"

    def __sub__(self, other: Price) -> Price:
        return Price(net=self.net - other.net, gross=self.gross - other.gross)


class ServerTypeInfo(_Model):
    name: str
    cores: int
    memory_gb: float
    disk_gb: int
    architecture: str
    monthly_price: Price | None  # in the server's location; None if not sold there


class ServerFacts(_Model):
    id: int
    name: str
    status: str  # running, off, starting, stopping, migrating, rebuilding, ...
    server_type: ServerTypeInfo
    disk_gb: int  # the server's own disk (may be smaller than the type's after a resize)
    location: str
    city: str | None
    ipv4: str | None
    ipv6: str | None  # the routed /64 network
    included_traffic_bytes: int | None
    outgoing_traffic_bytes: int | None
    ingoing_traffic_bytes: int | None
    volume_ids: tuple[int, ...]
    created: datetime | None


class MetricPoint(_Model):
    at: datetime
    value: float


class MetricSeries(_Model):
    name: str  # e.g. "cpu", "disk.0.iops.read", "network.0.bandwidth.in"
    unit: str
    points: tuple[MetricPoint, ...]

    @property
    def latest(self) -> float | None:
        return self.points[-1].value if self.points else None

    @property
    def average(self) -> float | None:
        return sum(p.value for p in self.points) / len(self.points) if self.points else None

    @property
    def peak(self) -> float | None:
        return max((p.value for p in self.points), default=None)


class ServerMetrics(_Model):
    kind: str
    period: str
    start: datetime
    end: datetime
    step: float
    series: tuple[MetricSeries, ...]


class ActionResult(_Model):
    id: int
    command: str
    status: str
    progress: int
    started: datetime | None
    finished: datetime | None


class Snapshot(_Model):
    image_id: int
    description: str
    status: str  # "available" once done
    image_size_gb: float | None  # compressed size Hetzner bills; may lag behind a moment
    disk_size_gb: float | None
    action: ActionResult


class ResizePlan(_Model):
    """What `resize` would do, to show before asking for approval."""

    server: str
    location: str
    current: ServerTypeInfo
    new: ServerTypeInfo
    disk_gb_after: int  # the disk is kept, so a later downgrade stays possible
    monthly_difference: Price | None
    problems: tuple[str, ...]

    @property
    def possible(self) -> bool:
        return not self.problems


class ResizeResult(_Model):
    plan: ResizePlan
    actions: tuple[ActionResult, ...]
    facts: ServerFacts


class VolumeInfo(_Model):
    id: int
    name: str
    size_gb: int
    linux_device: str
    location: str
    status: str
    server_id: int | None
    server_name: str | None
    format: str | None


# -- the adapter ---------------------------------------------------------------------------


class HetznerCloud:
    """The managed server and the project's volumes, seen through hcloud."""

    def __init__(self, settings: HetznerSettings, client: Client | None = None):
        self._settings = settings
        hcloud, _ = _hcloud()
        self._client = client or hcloud.Client(
            settings.token, api_endpoint=settings.api_endpoint, application_name="spbot",
            poll_interval=settings.poll_interval, timeout=settings.timeout)
        self._pacing = _Pacing(settings.retry)
        self._pacing.install(self._client)
        self._server_id: int | None = settings.server if isinstance(settings.server, int) else None

    # -- facts -----------------------------------------------------------------------------

    async def server_facts(self) -> ServerFacts:
        """Name, type, price, location, addresses, status and traffic of the server."""
        server = await self._server()
        return await self._call("reading the server", _facts, server)

    async def metrics(self, kind: MetricKind, period: Period = "24h") -> ServerMetrics:
        """CPU, disk or network time series over the last hour, day or week."""
        if kind not in ("cpu", "disk", "network") or period not in PERIODS:
            raise ValueError(f"unknown metrics {kind!r} over {period!r}")
        span, step = PERIODS[period]
        end = datetime.now(timezone.utc).replace(microsecond=0)
        server = await self._server()
        answer = await self._call(f"reading {kind} metrics", self._client.servers.get_metrics,
                                  server, type=kind, start=end - span, end=end, step=step)
        return await self._call(f"reading {kind} metrics", _metrics, kind, period,
                                answer.metrics)

    # -- server actions --------------------------------------------------------------------

    async def reboot(self, on_progress: Progress | None = None) -> ActionResult:
        """Soft reboot (ACPI) and wait until Hetzner reports the action done."""
        server = await self._server()
        await _tell(on_progress, f"rebooting {server.name}")
        action = await self._call("requesting a reboot", self._client.servers.reboot, server, write=True)
        return await self._wait(action, "rebooting the server")

    async def create_snapshot(self, description: str | None = None,
                              labels: dict[str, str] | None = None,
                              on_progress: Progress | None = None) -> Snapshot:
        """Snapshot image of the server's disk; waits until it is available."""
        server = await self._server()
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        description = description or f"spbot snapshot of {server.name}, {when}"
        await _tell(on_progress, f"creating snapshot “{description}”")
        created = await self._call("creating a snapshot", self._client.servers.create_image,
                                   server, write=True, description=description, type="snapshot",
                                   labels={"created-by": "spbot", **(labels or {})})
        action = await self._wait(created.action, "creating a snapshot")
        image = await self._call("reading the snapshot", self._client.images.get_by_id,
                                 created.image.id)
        return Snapshot(image_id=image.id, description=image.description or description,
                        status=image.status, image_size_gb=image.image_size,
                        disk_size_gb=image.disk_size, action=action)

    async def plan_resize(self, new_type: str) -> ResizePlan:
        """Old and new type, monthly price difference, and anything that prevents the change."""
        server = await self._server()
        target = await self._call(f"looking up server type {new_type}",
                                  self._client.server_types.get_by_name, new_type)
        if target is None:
            raise HetznerError(f"Hetzner has no server type named “{new_type}”; "
                               "see https://www.hetzner.com/cloud for the current names.")
        return await self._call("planning the resize", _plan, server, target)

    async def resize(self, new_type: str, *, expect_current: str | None = None,
                     on_progress: Progress | None = None) -> ResizeResult:
        """Shut down, change type keeping the disk; each action waited for. Hetzner starts the
        server when the type change finishes: a server that was running is powered on only if it
        did not come up, one that was off is shut down again.

        `expect_current` guards against acting on a stale plan: the server's type must still
        be that. If the guest ignores the shutdown request it is powered off hard after
        `shutdown_timeout`. After a failed type change a server that was running and is now off
        is powered on again with its old type.
        """
        plan = await self.plan_resize(new_type)
        if expect_current and plan.current.name != expect_current:
            raise HetznerError(f"The server is now {plan.current.name}, not {expect_current} "
                               "as planned; look at the new plan before resizing.")
        if not plan.possible:
            raise HetznerError("Hetzner cannot resize: " + "; ".join(plan.problems))
        server = await self._server()
        was_running = server.status != "off"
        actions = await self._power_off(server, on_progress) if was_running else []
        actions.append(await self._change_type(server, plan, was_running, on_progress))
        actions += await self._settle(was_running, on_progress)
        return ResizeResult(plan=plan, actions=tuple(actions), facts=await self.server_facts())

    async def _settle(self, was_running: bool, on_progress: Progress | None) -> list[ActionResult]:
        """Hetzner starts the server itself when change_type finishes ("This copies the content
        of its disk, and starts it again", API reference). A server that was running is only
        powered on if it did not come up; one that was off is shut down again."""
        server = await self._server()
        if was_running:
            if server.status == "off":
                await _tell(on_progress, "powering on")
                action = await self._call("powering on", self._client.servers.power_on, server,
                                          write=True)
                return [await self._wait(action, "powering on after the resize")]
            await self._until_status(("running",), "starting after the resize")
            return []
        if server.status == "off":
            return []
        await _tell(on_progress, "Hetzner started the server after the type change; it was off "
                                 "before, so shutting it down again")
        return await self._power_off(server, None)

    async def _until_status(self, wanted: tuple[str, ...], what: str) -> None:
        deadline = time.monotonic() + self._settings.action_timeout
        while (await self._server()).status not in wanted:
            if time.monotonic() > deadline:
                raise HetznerError(f"The server did not reach {' or '.join(wanted)} within "
                                   f"{self._settings.action_timeout:.0f} s while {what}; check it "
                                   "in the Hetzner Cloud Console.")
            await asyncio.sleep(self._settings.poll_interval)

    # -- volumes ---------------------------------------------------------------------------

    async def list_volumes(self) -> list[VolumeInfo]:
        """All volumes of the project, with the server each is attached to."""
        volumes = await self._call("listing volumes", self._client.volumes.get_all)
        servers = await self._call("listing servers", self._client.servers.get_all)
        names = {s.id: s.name for s in servers}
        return await self._call("reading volumes", _volumes, volumes, names)

    async def resize_volume(self, volume: int | str, size_gb: int,
                            on_progress: Progress | None = None) -> VolumeInfo:
        """Grow a volume to `size_gb` and wait. The filesystem on it still has to be grown
        (resize2fs / xfs_growfs) on the server afterwards."""
        found = await self._volume(volume)
        if size_gb <= found.size:
            raise HetznerError(f"Hetzner volumes can only grow: “{found.name}” is already "
                               f"{found.size} GB; ask for more than that.")
        await _tell(on_progress, f"growing volume {found.name} from {found.size} to {size_gb} GB")
        action = await self._call("resizing the volume", self._client.volumes.resize,
                                  found, size_gb, write=True)
        await self._wait(action, "resizing the volume")
        return await self._volume_info(found.id)

    async def volume_for_device(self, device: str | os.PathLike[str],
                                by_id_dir: Path = Path("/dev/disk/by-id")) -> VolumeInfo | None:
        """The Hetzner volume behind a block device (/dev/sdb, /dev/sdb1, or its by-id path)."""
        volume_id = await asyncio.to_thread(volume_id_for_device, device, by_id_dir)
        if volume_id is None:
            return None
        return await self._volume_info(volume_id)

    # -- internals -------------------------------------------------------------------------

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, write: bool = False,
                    **kwargs: Any) -> T:
        """Run one blocking hcloud call in a thread, with our retry rules; translate failures.

        hcloud's own retry loop is switched off (see _Pacing): it would send a timed-out POST
        again. Here a 429 waits about a second per request (Hetzner refills one per second),
        `conflict` is retried (nothing was done), and 5xx answers and timeouts are retried for
        reads only: a write that may have reached Hetzner is never sent twice."""
        hcloud, requests = _hcloud()
        policy = self._settings.retry
        for attempt in range(policy.max_retries + 1):
            await self._pacing.before_request()
            try:
                return await asyncio.to_thread(self._pacing.run, fn, *args, **kwargs)
            except (hcloud.APIException, requests.RequestException) as exc:
                wait = self._pacing.retry_wait(exc, attempt, write)
                if wait is None or attempt == policy.max_retries:
                    raise HetznerError(self._scrub(_explain(exc, what, self._settings,
                                                            attempt))) from exc
                log.info("Hetzner Cloud API answered %s; retry %d of %d in %.2f s",
                         self._pacing.describe(exc), attempt + 1, policy.max_retries, wait)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    def _scrub(self, text: str) -> str:
        token = self._settings.token
        return text.replace(token, "***") if token else text

    async def _server(self):
        """The managed server, freshly read (its id is resolved from the name once)."""
        if self._server_id is None:
            name = str(self._settings.server)
            server = await self._call(f"looking up server {name}",
                                      self._client.servers.get_by_name, name)
            if server is None:
                raise HetznerError(f"Hetzner has no server named “{name}” in this project; "
                                   "check the server name in the bot's configuration.")
            self._server_id = server.id
            return server
        return await self._call("reading the server", self._client.servers.get_by_id,
                                self._server_id)

    async def _volume(self, volume: int | str):
        if isinstance(volume, int) or str(volume).isdigit():
            return await self._call("reading the volume", self._client.volumes.get_by_id,
                                    int(volume))
        found = await self._call("looking up the volume", self._client.volumes.get_by_name,
                                 str(volume))
        if found is None:
            raise HetznerError(f"Hetzner has no volume named “{volume}” in this project.")
        return found

    async def _volume_info(self, volume_id: int) -> VolumeInfo:
        volume = await self._call("reading the volume", self._client.volumes.get_by_id,
                                  volume_id)
        names = {}
        if volume.server is not None:
            server = await self._call("reading the volume's server",
                                      self._client.servers.get_by_id, volume.server.id)
            names[server.id] = server.name
        return await self._call("reading the volume", _volume, volume, names)

    async def _wait(self, action, what: str) -> ActionResult:
        """Poll an action until it is no longer running; an error status becomes HetznerError."""
        deadline = time.monotonic() + self._settings.action_timeout
        while action.status == "running":
            if time.monotonic() > deadline:
                raise HetznerError(
                    f"Hetzner action “{action.command}” ({action.id}) is still running after "
                    f"{self._settings.action_timeout:.0f} s while {what}; check it in the "
                    "Hetzner Cloud Console before trying again.")
            await asyncio.sleep(self._settings.poll_interval)
            action = await self._call(what, self._client.actions.get_by_id, action.id)
        if action.status == "error":
            error = action.error or {}
            raise HetznerError(self._scrub(
                f"Hetzner action “{action.command}” failed while {what}: "
                f"{error.get('message', 'no message')} ({error.get('code', 'unknown')})."))
        return _action(action)

    async def _power_off(self, server, on_progress: Progress | None) -> list[ActionResult]:
        """Graceful shutdown; a hard power-off if the guest is still up after the timeout."""
        await _tell(on_progress, "shutting down")
        action = await self._call("shutting down", self._client.servers.shutdown, server, write=True)
        done = [await self._wait(action, "shutting down")]
        if await self._is_off_within(self._settings.shutdown_timeout):
            return done
        await _tell(on_progress, "guest did not shut down in time; powering off")
        action = await self._call("powering off", self._client.servers.power_off, server, write=True)
        done.append(await self._wait(action, "powering off"))
        return done

    async def _is_off_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            if (await self._server()).status == "off":
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(self._settings.poll_interval)

    async def _change_type(self, server, plan: ResizePlan, was_running: bool,
                           on_progress: Progress | None) -> ActionResult:
        """change_type keeping the disk; on failure bring a server that was running back up."""
        await _tell(on_progress, f"changing type {plan.current.name} → {plan.new.name}")
        try:
            action = await self._start_once(
                "changing the server type", "change_server_type", server,
                self._client.servers.change_type, server,
                server_type=_hcloud()[0].server_types.ServerType(name=plan.new.name),
                upgrade_disk=False)
            return await self._wait(action, "changing the server type")
        except HetznerError as exc:
            if not was_running:
                raise
            raise HetznerError(f"{exc} {await self._recover()}") from exc

    async def _start_once(self, what: str, command: str, server, fn: Callable[..., Any],
                          *args: Any, **kwargs: Any):
        """Start an action that must not run twice. When the POST timed out or Hetzner says
        the server is locked, the request may have arrived after all: a running action with
        this command is then taken as ours instead of failing or sending it again."""
        try:
            return await self._call(what, fn, *args, write=True, **kwargs)
        except HetznerError as exc:
            cause = exc.__cause__
            hcloud, requests = _hcloud()
            if not (isinstance(cause, requests.Timeout)
                    or (isinstance(cause, hcloud.APIException) and cause.code == "locked")):
                raise
            found = await self._running_action(server, command, what)
            if found is None:
                raise
            log.info("Hetzner action %s (%s) is already running; waiting for it", command,
                     found.id)
            return found

    async def _running_action(self, server, command: str, what: str):
        """A running action with `command` on the server; a request that timed out may still
        be processed, so look a few times over three request timeouts."""
        deadline = time.monotonic() + 3 * self._settings.timeout
        while True:
            running = await self._call(f"{what} (looking for the running action)",
                                       self._client.servers.get_actions, server,
                                       status=["running"])
            found = [a for a in running if a.command == command]
            if found or time.monotonic() > deadline:
                return found[0] if found else None
            await asyncio.sleep(max(self._settings.poll_interval, 0.05))

    async def _recover(self) -> str:
        """After a failed type change: power on only if the server is really off."""
        try:
            server = await self._server()
            if server.status == "running":
                return "The server is running with its old type."
            if server.status != "off":
                await self._until_status(("running", "off"), "waiting after the failed resize")
                server = await self._server()
                if server.status == "running":
                    return "The server is running with its old type."
            action = await self._call("powering on", self._client.servers.power_on, server,
                                      write=True)
            await self._wait(action, "powering on again")
        except HetznerError as exc:
            return (f"The server is still off and could not be powered on ({exc}); "
                    "power it on in the Hetzner Cloud Console.")
        return "The server was powered on again with its old type."


# -- translation of hcloud objects ---------------------------------------------------------


async def _tell(on_progress: Progress | None, message: str) -> None:
    if on_progress is not None:
        await on_progress(message)


def _price_in(server_type, location: str) -> Price | None:
    for entry in server_type.prices or []:
        if entry.get("location") == location:
            monthly = entry["price_monthly"]
            return Price(net=Decimal(monthly["net"]), gross=Decimal(monthly["gross"]))
    return None


def _type_info(server_type, location: str) -> ServerTypeInfo:
    return ServerTypeInfo(name=server_type.name, cores=server_type.cores,
                          memory_gb=server_type.memory, disk_gb=server_type.disk,
                          architecture=server_type.architecture or "x86",
                          monthly_price=_price_in(server_type, location))


def _facts(server) -> ServerFacts:
    location = server.location.name
    net = server.public_net
    return ServerFacts(
        id=server.id, name=server.name, status=server.status,
        server_type=_type_info(server.server_type, location),
        disk_gb=server.primary_disk_size or server.server_type.disk,
        location=location, city=server.location.city,
        ipv4=net.ipv4.ip if net and net.ipv4 else None,
        ipv6=net.ipv6.ip if net and net.ipv6 else None,
        included_traffic_bytes=server.included_traffic,
        outgoing_traffic_bytes=server.outgoing_traffic,
        ingoing_traffic_bytes=server.ingoing_traffic,
        volume_ids=tuple(v.id for v in server.volumes or []),
        created=server.created,
    )


def _available_in(server_type, location: str) -> bool:
    for entry in server_type.locations or []:
        if entry.location.name == location:
            return bool(entry.available) and entry.deprecation is None
    return _price_in(server_type, location) is not None


def _plan(server, target) -> ResizePlan:
    location = server.location.name
    current = _type_info(server.server_type, location)
    new = _type_info(target, location)
    disk = server.primary_disk_size or current.disk_gb
    problems = []
    if new.name == current.name:
        problems.append(f"the server already is a {new.name}")
    if new.architecture != current.architecture:
        problems.append(f"{new.name} is {new.architecture}, the server is "
                        f"{current.architecture}; that needs a rebuild, not a resize")
    if new.disk_gb < disk:
        problems.append(f"{new.name} has a {new.disk_gb} GB disk, smaller than the server's "
                        f"{disk} GB")
    if not _available_in(target, location):
        problems.append(f"{new.name} cannot be ordered in {location}")
    difference = (new.monthly_price - current.monthly_price
                  if new.monthly_price and current.monthly_price else None)
    return ResizePlan(server=server.name, location=location, current=current, new=new,
                      disk_gb_after=disk, monthly_difference=difference,
                      problems=tuple(problems))


def _unit(series_name: str) -> str:
    if series_name == "cpu":
        return "%"
    if ".iops." in series_name:
        return "IO/s"
    if ".pps." in series_name:
        return "packets/s"
    return "bytes/s"


def _metrics(kind: str, period: str, metrics) -> ServerMetrics:
    series = tuple(
        MetricSeries(name=name, unit=_unit(name), points=tuple(
            MetricPoint(at=datetime.fromtimestamp(float(ts), timezone.utc), value=float(value))
            for ts, value in data.get("values", [])))
        for name, data in sorted(metrics.time_series.items()))
    return ServerMetrics(kind=kind, period=period, start=metrics.start, end=metrics.end,
                         step=float(metrics.step), series=series)


def _action(action) -> ActionResult:
    return ActionResult(id=action.id, command=action.command, status=action.status,
                        progress=action.progress or 0, started=action.started,
                        finished=action.finished)


def _volume(volume, server_names: dict[int, str]) -> VolumeInfo:
    server_id = volume.server.id if volume.server is not None else None
    return VolumeInfo(id=volume.id, name=volume.name, size_gb=volume.size,
                      linux_device=volume.linux_device, location=volume.location.name,
                      status=volume.status, server_id=server_id,
                      server_name=server_names.get(server_id) if server_id else None,
                      format=volume.format)


def _volumes(volumes, server_names: dict[int, str]) -> list[VolumeInfo]:
    return [_volume(v, server_names) for v in volumes]


def volume_id_for_device(device: str | os.PathLike[str],
                         by_id_dir: Path = Path("/dev/disk/by-id")) -> int | None:
    """The Hetzner volume id of a block device, from its udev by-id link
    (`scsi-0HC_Volume_<id>`, `-partN` for partitions); None if it is not a Hetzner volume."""
    direct = VOLUME_BY_ID.search(str(device))
    if direct:
        return int(direct.group(1))
    target = os.path.realpath(device)
    try:
        entries = sorted(by_id_dir.iterdir())
    except OSError:
        return None
    for entry in entries:
        match = VOLUME_BY_ID.fullmatch(entry.name)
        if match and os.path.realpath(entry) == target:
            return int(match.group(1))
    return None


# -- errors and retries --------------------------------------------------------------------


def _explain(exc: Exception, what: str, settings: HetznerSettings, retries: int) -> str:
    """A message for a failed call after `retries` retries: what failed, why, what to do."""
    hcloud, requests = _hcloud()
    APIException = hcloud.APIException
    if isinstance(exc, requests.Timeout):
        return (f"Hetzner Cloud API did not answer within {settings.timeout:g} s while {what} "
                f"(tried {retries + 1} times); check {STATUS_PAGE} and the server's network, "
                "then try again.")
    if isinstance(exc, requests.RequestException):
        return (f"Could not reach the Hetzner Cloud API while {what} "
                f"({type(exc).__name__}); check the server's network and DNS, then try again.")
    assert isinstance(exc, APIException)
    code, message = exc.code, exc.message
    if code == "unauthorized" or code == HTTPStatus.UNAUTHORIZED:
        return f"Hetzner rejected the API token: {message}. {TOKEN_HELP}"
    if code in ("forbidden", "token_readonly") or code == HTTPStatus.FORBIDDEN:
        return (f"Hetzner refused {what}: {message} ({code}). The bot needs a Read & Write "
                "API token for this project.")
    if code == "rate_limit_exceeded" or code == HTTPStatus.TOO_MANY_REQUESTS:
        return (f"Hetzner is still rate limiting after {retries} retries while {what} "
                f"({message}); wait a few minutes and try again.")
    if code in ("locked", "conflict"):
        return (f"Hetzner is busy: another action is still running on the server while {what} "
                f"({message}); try again when that has finished.")
    if code == "not_found" or code == HTTPStatus.NOT_FOUND:
        return f"Hetzner could not find what was needed for {what}: {message}."
    if code in OUTAGE_CODES or (isinstance(code, int) and code >= 500):
        return (f"The Hetzner Cloud API failed while {what} ({code}: {message}) after "
                f"{retries} retries; check {STATUS_PAGE} and try again later.")
    return f"Hetzner refused {what}: {message} ({code})."


class _Pacing:
    """Our retry and rate-limit rules in place of hcloud's.

    Hetzner's limit is 3600 requests per hour and project; `RateLimit-Remaining` says what is
    left and one request comes back every second. `RateLimit-Reset` is when the FULL quota is
    back (about an hour when empty), so waiting for it would make every 429 cost the whole
    cap; we wait about a second per request instead, and pause before a request when the last
    answer said nothing is left (docs.hetzner.cloud, "Rate Limiting").

    hcloud has no public setting for its retry loop (`ClientBase.request`, which also re-sends
    a timed-out POST); `install` sets its `_retry_max_retries` to 0 and adds a response hook
    to its `_session`. Both exist in hcloud 2.6 to 2.27; pyproject.toml pins that range.
    """

    def __init__(self, policy: RetryPolicy):
        self._policy = policy
        self._local = threading.local()
        self._lock = threading.Lock()
        self._remaining: int | None = None
        self._seen_at = 0.0

    def install(self, client: Client) -> None:
        base = client._client
        missing = [a for a in ("_retry_max_retries", "_session") if not hasattr(base, a)]
        if missing:
            raise RuntimeError("this hcloud version lacks " + ", ".join(missing)
                               + "; install the version pyproject.toml asks for")
        base._retry_max_retries = 0
        base._session.hooks["response"].append(self.remember)

    def remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._local.status = response.status_code
        value = response.headers.get("RateLimit-Remaining")
        if value is not None and value.strip().isdigit():
            with self._lock:
                self._remaining, self._seen_at = int(value), time.monotonic()

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """In the worker thread: the call, remembering the HTTP status of its last answer."""
        self._local.status = 0
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            exc.spbot_status = self._local.status  # type: ignore[attr-defined]
            raise

    async def before_request(self) -> None:
        """When the last answer said no request is left, wait until one has come back."""
        with self._lock:
            remaining, seen_at = self._remaining, self._seen_at
        if remaining is None or remaining >= 1:
            return
        wait = self._policy.refill_seconds - (time.monotonic() - seen_at)
        if wait > 0:
            log.info("Hetzner Cloud API: no requests left this hour; pacing %.2f s", wait)
            await asyncio.sleep(min(wait, self._policy.rate_limit_max_wait))
        with self._lock:
            if self._seen_at == seen_at:
                self._remaining = None  # one request has come back since

    def retry_wait(self, exc: Exception, attempt: int, write: bool) -> float | None:
        """Seconds to wait before retrying, or None to give up now."""
        hcloud, requests = _hcloud()
        status = getattr(exc, "spbot_status", 0)
        backoff = min(self._policy.backoff_cap, self._policy.backoff_base * 2 ** attempt)
        if isinstance(exc, requests.Timeout):
            return None if write else backoff
        if not isinstance(exc, hcloud.APIException):
            return None
        if exc.code == "rate_limit_exceeded" or status == 429:
            return min(self._policy.rate_limit_max_wait,
                       self._policy.refill_seconds * (attempt + 1))
        if exc.code == "conflict":
            return backoff
        if write:
            return None
        if exc.code in ("bad_gateway", "timeout") or status in (502, 503, 504) or status >= 500:
            return backoff
        return None

    @staticmethod
    def describe(exc: Exception) -> str:
        status = getattr(exc, "spbot_status", 0)
        code = getattr(exc, "code", None) or type(exc).__name__
        return f"{status or 'nothing'} ({code})"
