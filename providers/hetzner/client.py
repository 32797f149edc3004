"""The Hetzner Cloud adapter: the managed server and the project's volumes through hcloud.

Every hcloud call is blocking and runs in `asyncio.to_thread` (see `_call`); waiting for an action
is an async poll loop (cancellable, never holding a thread)."""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cloud_server import (
    ActionResult, MetricKind, Period, Price, Progress, ResizePlan, ResizeResult, ServerFacts,
    ServerMetrics, Snapshot, VolumeInfo,
)
from .pacing import Pacing, T, explain, load_hcloud, log
from .settings import HetznerError, HetznerSettings
from .translate import (
    tell, to_action, to_facts, to_metrics, to_plan, to_volume, to_volumes, volume_id_for_device,
)

if TYPE_CHECKING:
    from hcloud import Client

PERIODS: dict[str, tuple[timedelta, int]] = {  # period -> (span, step in seconds)
    "1h": (timedelta(hours=1), 60),
    "24h": (timedelta(days=1), 600),
    "7d": (timedelta(days=7), 3600),
}


class HetznerCloud:
    """The managed server and the project's volumes, seen through hcloud."""

    def __init__(self, settings: HetznerSettings, client: Client | None = None):
        self._settings = settings
        hcloud, _ = load_hcloud()
        self._client = client or hcloud.Client(
            settings.token, api_endpoint=settings.api_endpoint, application_name="spbot",
            poll_interval=settings.poll_interval, timeout=settings.timeout)
        self._pacing = Pacing(settings.retry)
        self._pacing.install(self._client)
        self._server_id: int | None = settings.server if isinstance(settings.server, int) else None

    # -- facts -----------------------------------------------------------------------------

    async def server_facts(self) -> ServerFacts:
        """Name, type, price, location, addresses, status and traffic of the server."""
        server = await self._server()
        return await self._call("reading the server", to_facts, server)

    async def metrics(self, kind: MetricKind, period: Period = "24h") -> ServerMetrics:
        """CPU, disk or network time series over the last hour, day or week."""
        if kind not in ("cpu", "disk", "network") or period not in PERIODS:
            raise ValueError(f"unknown metrics {kind!r} over {period!r}")
        span, step = PERIODS[period]
        end = datetime.now(timezone.utc).replace(microsecond=0)
        server = await self._server()
        answer = await self._call(f"reading {kind} metrics", self._client.servers.get_metrics,
                                  server, type=kind, start=end - span, end=end, step=step)
        return await self._call(f"reading {kind} metrics", to_metrics, kind, period,
                                answer.metrics)

    # -- server actions --------------------------------------------------------------------

    async def reboot(self, on_progress: Progress | None = None) -> ActionResult:
        """Soft reboot (ACPI) and wait until Hetzner reports the action done."""
        server = await self._server()
        await tell(on_progress, f"rebooting {server.name}")
        action = await self._call("requesting a reboot", self._client.servers.reboot, server, write=True)
        return await self._wait(action, "rebooting the server")

    async def create_snapshot(self, description: str | None = None,
                              labels: dict[str, str] | None = None,
                              on_progress: Progress | None = None) -> Snapshot:
        """Snapshot image of the server's disk; waits until it is available."""
        server = await self._server()
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        description = description or f"spbot snapshot of {server.name}, {when}"
        await tell(on_progress, f"creating snapshot “{description}”")
        created = await self._call("creating a snapshot", self._client.servers.create_image,
                                   server, write=True, description=description, type="snapshot",
                                   labels={"created-by": "spbot", **(labels or {})})
        action = await self._wait(created.action, "creating a snapshot")
        image = await self._call("reading the snapshot", self._client.images.get_by_id,
                                 created.image.id)
        return Snapshot(image_id=image.id, description=image.description or description,
                        status=image.status, image_size_gb=image.image_size,
                        disk_size_gb=image.disk_size, action=action)

    async def plan_resize(self, new_type: str, grow_disk: bool = False) -> ResizePlan:
        """Old and new type, monthly price difference, and anything that prevents the change.
        `grow_disk` also grows the disk to the new type's (then no way back to a smaller type)."""
        server = await self._server()
        target = await self._call(f"looking up server type {new_type}",
                                  self._client.server_types.get_by_name, new_type)
        if target is None:
            raise HetznerError(f"Hetzner has no server type named “{new_type}”; "
                               "see https://www.hetzner.com/cloud for the current names.")
        return await self._call("planning the resize", to_plan, server, target, grow_disk)

    async def resize(self, new_type: str, *, grow_disk: bool = False,
                     expect_current: str | None = None,
                     on_progress: Progress | None = None) -> ResizeResult:
        """Shut down, change type (keeping the disk unless `grow_disk`); each action waited for. Hetzner starts the
        server when the type change finishes: a server that was running is powered on only if it
        did not come up, one that was off is shut down again.

        `expect_current` guards against acting on a stale plan: the server's type must still
        be that. If the guest ignores the shutdown request it is powered off hard after
        `shutdown_timeout`. After a failed type change a server that was running and is now off
        is powered on again with its old type.
        """
        plan = await self.plan_resize(new_type, grow_disk)
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
                await tell(on_progress, "powering on")
                action = await self._call("powering on", self._client.servers.power_on, server,
                                          write=True)
                return [await self._wait(action, "powering on after the resize")]
            await self._until_status(("running",), "starting after the resize")
            return []
        if server.status == "off":
            return []
        await tell(on_progress, "Hetzner started the server after the type change; it was off "
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

    async def start_reboot(self) -> ActionResult:
        """Ask for a soft reboot without waiting: the action id is known before the wait, so a
        caller that the reboot itself restarts can still find out how it ended (`action`)."""
        server = await self._server()
        action = await self._call("requesting a reboot", self._client.servers.reboot, server, write=True)
        return to_action(action)

    async def wait_action(self, action: ActionResult, what: str) -> ActionResult:
        """Wait for an action started earlier (e.g. by `start_reboot`) to finish."""
        return await self._wait(action, what)

    async def action(self, action_id: int) -> ActionResult:
        """An action as Hetzner reports it now."""
        found = await self._call("reading the action", self._client.actions.get_by_id, action_id)
        return to_action(found)

    async def running_actions(self) -> list[ActionResult]:
        """The server's actions still running (GET /servers/{id}/actions?status=running): after
        a restart, what a stopped command left under way."""
        server = await self._server()
        running = await self._call("listing the server's running actions",
                                   self._client.servers.get_actions, server, status=["running"])
        return [to_action(a) for a in running]

    async def power_on(self, on_progress: Progress | None = None) -> ActionResult:
        """Power the server on and wait (POST /servers/{id}/actions/poweron)."""
        await tell(on_progress, "powering on")
        server = await self._server()
        action = await self._start_once("powering on", "start_server", server,
                                        self._client.servers.power_on, server)
        return await self._wait(action, "powering on")

    async def volume_price(self) -> Price | None:
        """Per GB and month from Hetzner's price list (GET /pricing); None if unreadable."""
        try:
            answer = await self._call("reading prices", self._client.request, "GET", "/pricing")
            price = answer["pricing"]["volume"]["price_per_gb_month"]
            return Price(net=Decimal(price["net"]), gross=Decimal(price["gross"]))
        except (HetznerError, KeyError, TypeError, ArithmeticError) as exc:
            log.info("Hetzner's volume price is unavailable (%s)", type(exc).__name__)
            return None

    # -- volumes ---------------------------------------------------------------------------

    async def list_volumes(self) -> list[VolumeInfo]:
        """All volumes of the project, with the server each is attached to."""
        volumes = await self._call("listing volumes", self._client.volumes.get_all)
        servers = await self._call("listing servers", self._client.servers.get_all)
        names = {s.id: s.name for s in servers}
        return await self._call("reading volumes", to_volumes, volumes, names)

    async def resize_volume(self, volume: int | str, size_gb: int,
                            on_progress: Progress | None = None) -> VolumeInfo:
        """Grow a volume to `size_gb` and wait. The filesystem on it still has to be grown
        (resize2fs / xfs_growfs) on the server afterwards."""
        found = await self._volume(volume)
        if size_gb <= found.size:
            raise HetznerError(f"Hetzner volumes can only grow: “{found.name}” is already "
                               f"{found.size} GB; ask for more than that.")
        await tell(on_progress, f"growing volume {found.name} from {found.size} to {size_gb} GB")
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

        hcloud's own retry loop is switched off (see Pacing): it would send a timed-out POST
        again. Here a 429 waits about a second per request (Hetzner refills one per second),
        `conflict` is retried (nothing was done), and 5xx answers and timeouts are retried for
        reads only: a write that may have reached Hetzner is never sent twice."""
        hcloud, requests = load_hcloud()
        policy = self._settings.retry
        for attempt in range(policy.max_retries + 1):
            await self._pacing.before_request()
            try:
                return await asyncio.to_thread(self._pacing.run, fn, *args, **kwargs)
            except (hcloud.APIException, requests.RequestException) as exc:
                wait = self._pacing.retry_wait(exc, attempt, write)
                if wait is None or attempt == policy.max_retries:
                    raise HetznerError(self._scrub(explain(exc, what, self._settings,
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
        return await self._call("reading the volume", to_volume, volume, names)

    async def _wait(self, action, what: str) -> ActionResult:
        """Poll an action (hcloud's, or an ActionResult) until it is no longer running; an error
        status becomes HetznerError."""
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
        return action if isinstance(action, ActionResult) else to_action(action)

    async def _power_off(self, server, on_progress: Progress | None) -> list[ActionResult]:
        """Graceful shutdown; a hard power-off if the guest is still up after the timeout."""
        await tell(on_progress, "shutting down")
        action = await self._call("shutting down", self._client.servers.shutdown, server, write=True)
        done = [await self._wait(action, "shutting down")]
        if await self._is_off_within(self._settings.shutdown_timeout):
            return done
        await tell(on_progress, "guest did not shut down in time; powering off")
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
        """change_type (growing the disk only if planned); on failure bring a server that was running back up."""
        await tell(on_progress, f"changing type {plan.current.name} → {plan.new.name}")
        try:
            action = await self._start_once(
                "changing the server type", "change_server_type", server,
                self._client.servers.change_type, server,
                server_type=load_hcloud()[0].server_types.ServerType(name=plan.new.name),
                upgrade_disk=plan.grow_disk)
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
            hcloud, requests = load_hcloud()
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
