"""The managed droplet and its volumes, seen through pydo (paths cite the OpenAPI spec,
github.com/digitalocean/openapi, specification/resources/...)."""
from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from . import translate
from .models import (
    ActionResult, DigitalOceanError, DigitalOceanSettings, DropletFacts, DropletMetrics,
    MetricKind, MetricSeries, Period, ResizePlan, ResizeResult, SizeInfo, Snapshot,
    SnapshotResult, VolumeInfo,
)
from .transport import Answer, Api

log = logging.getLogger(__name__)

Progress = Callable[[str], Awaitable[None]]
PERIODS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
CONSOLE = "the DigitalOcean control panel"
VOLUME_MAX_GB = 16384  # volume_action_post_resize.yml: maximum


class DigitalOceanCloud:
    """Facts, metrics and actions of the droplet the bot runs on."""

    def __init__(self, settings: DigitalOceanSettings, client: Any = None):
        self._settings = settings
        self._api = Api(settings, client)
        self._do = self._api.client
        self._droplet_id: int | None = settings.droplet if isinstance(settings.droplet, int) \
            else None

    # -- facts -----------------------------------------------------------------------------

    async def droplet_id(self) -> int:
        """The managed droplet's id: from the settings, else from the metadata service
        (`/metadata/v1/id`, reachable from the droplet itself), else by name
        (droplets_list.yml, `name` filter: exact, case-insensitive)."""
        if self._droplet_id is None:
            self._droplet_id = await self._metadata_id() or await self._id_by_name()
        return self._droplet_id

    async def droplet_facts(self) -> DropletFacts:
        """Status, size (vCPUs, memory, disk), region, addresses, volumes and monthly price
        (GET /v2/droplets/{droplet_id}, droplets_get.yml)."""
        return translate.droplet(await self._droplet())

    async def sizes(self) -> list[SizeInfo]:
        """Every droplet size with its monthly price (GET /v2/sizes, sizes_list.yml)."""
        items = await self._api.pages("listing droplet sizes", "sizes", self._do.sizes.list)
        return [translate.size(s) for s in items]

    async def metrics(self, kind: MetricKind, period: Period = "24h") -> DropletMetrics:
        """CPU busy %, public/private bandwidth (Mbit/s) or filesystem free/size (bytes) over
        the last hour, day or week (GET /v2/monitoring/metrics/droplet/{cpu,bandwidth,
        filesystem_free,filesystem_size}). Needs the metrics agent on the droplet."""
        if kind not in ("cpu", "network", "disk") or period not in PERIODS:
            raise ValueError(f"unknown metrics {kind!r} over {period!r}")
        end = datetime.now(timezone.utc).replace(microsecond=0)
        start = end - PERIODS[period]
        window = {"host_id": str(await self.droplet_id()),
                  "start": str(int(start.timestamp())), "end": str(int(end.timestamp()))}
        series = await self._series(kind, window)
        return DropletMetrics(kind=kind, period=period, start=start, end=end,
                              series=tuple(series))

    async def _series(self, kind: str, window: dict[str, str]) -> list[MetricSeries]:
        monitoring, what = self._do.monitoring, f"reading {kind} metrics"
        if kind == "cpu":
            answer = await self._api.call(what, monitoring.get_droplet_cpu_metrics, **window)
            return [translate.cpu_percent(answer.body)]
        if kind == "network":
            series = []
            for interface in ("public", "private"):
                for direction in ("inbound", "outbound"):
                    answer = await self._api.call(
                        what, monitoring.get_droplet_bandwidth_metrics, interface=interface,
                        direction=direction, **window)
                    series += translate.plain_series(f"bandwidth.{interface}.{direction}",
                                                     "Mbit/s", answer.body)
            return series
        free = await self._api.call(what, monitoring.get_droplet_filesystem_free_metrics,
                                    **window)
        size = await self._api.call(what, monitoring.get_droplet_filesystem_size_metrics,
                                    **window)
        return (translate.plain_series("filesystem.free", "bytes", free.body, "mountpoint")
                + translate.plain_series("filesystem.size", "bytes", size.body, "mountpoint"))

    # -- droplet actions (POST /v2/droplets/{droplet_id}/actions, dropletActions_post.yml) ----

    async def reboot(self, on_progress: Progress | None = None) -> ActionResult:
        """Graceful reboot (`reboot`), waited for until completed."""
        return await self._droplet_action("reboot", "rebooting", on_progress)

    async def power_cycle(self, on_progress: Progress | None = None) -> ActionResult:
        """Hard reset (`power_cycle`): for a droplet that no longer answers a reboot."""
        return await self._droplet_action("power_cycle", "power cycling", on_progress)

    async def start_action(self, kind: str, **params: Any) -> ActionResult:
        """Start a droplet action (e.g. `reboot`) and return at once: its id is known before the
        wait, so a caller that the action restarts can still find out how it ended (`action`)."""
        droplet_id = await self.droplet_id()
        started = await self._api.call(f"requesting {kind}", self._do.droplet_actions.post,
                                       droplet_id, {"type": kind, **params}, write=True)
        return translate.action(started.body["action"])

    async def action(self, action_id: int) -> ActionResult:
        """An action as DigitalOcean reports it now (GET /v2/actions/{action_id},
        actions_get.yml)."""
        answer = await self._api.call("reading the action", self._do.actions.get, action_id)
        return translate.action(answer.body["action"])

    async def running_actions(self) -> list[ActionResult]:
        """The droplet's actions still in progress (GET /v2/droplets/{droplet_id}/actions, all
        pages, dropletActions_list.yml): after a restart, what a stopped command left under way."""
        items = await self._api.pages("listing the droplet's actions", "actions",
                                      self._do.droplet_actions.list, await self.droplet_id())
        return [translate.action(a) for a in items if a.get("status") == "in-progress"]

    async def power_on(self, on_progress: Progress | None = None) -> ActionResult:
        """`power_on`, waited for until completed."""
        return await self._droplet_action("power_on", "powering on", on_progress)

    async def wait_action(self, action_id: int, what: str) -> ActionResult:
        """Wait for an action started earlier (e.g. by `start_action`) to finish; `errored`
        raises DigitalOceanError."""
        answer = await self._api.call(what, self._do.actions.get, action_id)
        return await self._wait(answer.body["action"], what, self._do.actions.get)

    async def create_snapshot(self, name: str | None = None,
                              on_progress: Progress | None = None) -> SnapshotResult:
        """Snapshot of the droplet's disk (`snapshot` action), waited for; the snapshot is then
        found by name in GET /v2/droplets/{id}/snapshots (the action does not name it)."""
        facts = await self.droplet_facts()
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        name = name or f"spbot snapshot of {facts.name}, {stamp}"
        action = await self._droplet_action("snapshot", f"creating snapshot “{name}”",
                                            on_progress, name=name)
        found = [s for s in await self.list_snapshots() if s.name == name]
        if not found:
            raise DigitalOceanError(f"The snapshot “{name}” finished but is not listed.",
                                    f"Look for it under Backups & Snapshots in {CONSOLE}.")
        newest = max(found, key=lambda s: s.created or datetime.min.replace(tzinfo=timezone.utc))
        return SnapshotResult(snapshot=newest, action=action)

    async def list_snapshots(self) -> list[Snapshot]:
        """Snapshots (and backups) of the droplet, all pages (droplets_list_snapshots.yml)."""
        items = await self._api.pages("listing snapshots", "snapshots",
                                      self._do.droplets.list_snapshots, await self.droplet_id())
        return [translate.snapshot(s) for s in items]

    # -- resize ----------------------------------------------------------------------------

    async def plan_resize(self, size_slug: str, grow_disk: bool = False) -> ResizePlan:
        """Old and new size, monthly price difference (from /v2/sizes) and anything that
        prevents the change. `grow_disk` False changes CPU/RAM only (reversible); True also
        grows the disk to the new size's (permanent)."""
        facts = await self.droplet_facts()
        target = next((s for s in await self.sizes() if s.slug == size_slug), None)
        if target is None:
            raise DigitalOceanError(f"DigitalOcean has no droplet size “{size_slug}”.",
                                    "See the size slugs at https://slugs.do-api.dev.")
        return translate.plan(facts, target, grow_disk)

    async def resize(self, size_slug: str, *, grow_disk: bool = False,
                     expect_current: str | None = None,
                     on_progress: Progress | None = None) -> ResizeResult:
        """Shut down (hard power-off after `shutdown_timeout`), `resize`, and power on again if
        the droplet was running; each action waited for. DigitalOcean resizes only droplets
        that are off (doctl: "This command automatically powers off the Droplet before resizing
        it"). `expect_current` guards against a stale plan. After a failed resize a droplet
        that was running is powered on again with its old size."""
        plan = await self.plan_resize(size_slug, grow_disk)
        if expect_current and plan.current.slug != expect_current:
            raise DigitalOceanError(f"The droplet is now {plan.current.slug}, not "
                                    f"{expect_current} as planned.",
                                    "Look at the new plan before resizing.")
        if not plan.possible:
            raise DigitalOceanError("DigitalOcean cannot resize: " + "; ".join(plan.problems)
                                    + ".")
        was_running = (await self.droplet_facts()).status == "active"
        actions = await self._power_off(on_progress) if was_running else []
        try:
            actions.append(await self._droplet_action(
                "resize", f"resizing {plan.current.slug} → {plan.new.slug}", on_progress,
                size=plan.new.slug, disk=grow_disk))
        except DigitalOceanError as exc:
            if not was_running:
                raise
            raise DigitalOceanError(exc.happened, f"{await self._recover()} {exc.next_step}".strip(),
                                    status=exc.status, code=exc.code,
                                    request_id=exc.request_id) from exc
        if was_running:
            actions.append(await self._droplet_action("power_on", "powering on", on_progress))
        return ResizeResult(plan=plan, actions=tuple(actions), facts=await self.droplet_facts())

    async def _power_off(self, on_progress: Progress | None) -> list[ActionResult]:
        """`shutdown` (which "guarantees that the command is issued, not that it succeeds"),
        then `power_off` if the droplet is not off within `shutdown_timeout`."""
        done = [await self._droplet_action("shutdown", "shutting down", on_progress)]
        deadline = time.monotonic() + self._settings.shutdown_timeout
        while (await self._droplet())["status"] != "off":
            if time.monotonic() >= deadline:
                done.append(await self._droplet_action(
                    "power_off", "the droplet did not shut down in time; powering off",
                    on_progress))
                break
            await asyncio.sleep(self._settings.poll_interval)
        return done

    async def _recover(self) -> str:
        try:
            if (await self._droplet())["status"] == "active":
                return "The droplet is running with its old size."
            await self._droplet_action("power_on", "powering on again", None)
        except DigitalOceanError as exc:
            return (f"The droplet is still off and could not be powered on ({exc}); power it "
                    f"on in {CONSOLE}.")
        return "The droplet was powered on again with its old size."

    # -- volumes ---------------------------------------------------------------------------

    async def list_volumes(self) -> list[VolumeInfo]:
        """Block storage volumes attached to the droplet (GET /v2/volumes?region=, all pages,
        volumes_list.yml; kept when `droplet_ids` holds the droplet)."""
        droplet = await self._droplet()
        region = (droplet.get("region") or {}).get("slug")
        items = await self._api.pages("listing volumes", "volumes", self._do.volumes.list,
                                      region=region)
        return [translate.volume(v) for v in items if droplet["id"] in (v.get("droplet_ids") or [])]

    async def resize_volume(self, volume: str, size_gb: int,
                            on_progress: Progress | None = None) -> VolumeInfo:
        """Grow an attached volume (by id or name) to `size_gb` GiB and wait (POST
        /v2/volumes/{volume_id}/actions `resize`, volumeActions_post_byId.yml: "Volumes may only
        be resized upwards", at most 16 TiB). The filesystem still has to be grown afterwards."""
        found = next((v for v in await self.list_volumes() if volume in (v.id, v.name)), None)
        if found is None:
            raise DigitalOceanError(f"No volume “{volume}” is attached to the droplet.",
                                    "Check the name with the volume list.")
        if size_gb <= found.size_gb:
            raise DigitalOceanError(f"DigitalOcean volumes can only grow: “{found.name}” is "
                                    f"already {found.size_gb} GB.", "Ask for more than that.")
        if size_gb > VOLUME_MAX_GB:
            raise DigitalOceanError(f"DigitalOcean volumes hold at most {VOLUME_MAX_GB} GB.",
                                    "Ask for less, or add a second volume.")
        await _tell(on_progress, f"growing volume {found.name} from {found.size_gb} to "
                                 f"{size_gb} GB")
        started = await self._api.call(
            "resizing the volume", self._do.volume_actions.post_by_id, found.id,
            {"type": "resize", "size_gigabytes": size_gb, "region": found.region}, write=True)
        await self._wait(started.body["action"], "resizing the volume",
                         functools.partial(self._do.volume_actions.get, found.id))
        answer = await self._api.call("reading the volume", self._do.volumes.get, found.id)
        return translate.volume(answer.body["volume"])

    # -- internals -------------------------------------------------------------------------

    async def _metadata_id(self) -> int | None:
        url = self._settings.metadata_url
        if not url:
            return None
        import httpx
        try:
            async with httpx.AsyncClient(timeout=self._settings.metadata_timeout) as http:
                answer = await http.get(url)
        except httpx.HTTPError:
            return None
        text = answer.text.strip()
        return int(text) if answer.status_code == 200 and text.isdigit() else None

    async def _id_by_name(self) -> int:
        name = self._settings.droplet
        if not name:
            raise DigitalOceanError("The bot does not run on a DigitalOcean droplet (no "
                                    "metadata service) and no droplet name is configured.",
                                    "Put the droplet's name in the bot's configuration.")
        found = await self._api.pages(f"looking up droplet {name}", "droplets",
                                      self._do.droplets.list, name=str(name))
        if not found:
            raise DigitalOceanError(f"DigitalOcean has no droplet named “{name}” in this "
                                    "account.", "Check the droplet name in the bot's "
                                    "configuration.")
        if len(found) > 1:
            raise DigitalOceanError(f"{len(found)} droplets are named “{name}”.",
                                    "Configure the droplet by its id instead.")
        return int(found[0]["id"])

    async def _droplet(self) -> dict[str, Any]:
        droplet_id = await self.droplet_id()
        answer = await self._api.call("reading the droplet", self._do.droplets.get, droplet_id)
        return answer.body["droplet"]

    async def _droplet_action(self, kind: str, saying: str, on_progress: Progress | None,
                              **params: Any) -> ActionResult:
        droplet_id = await self.droplet_id()
        await _tell(on_progress, saying)
        what = saying.split(";")[-1].strip()
        started = await self._api.call(what, self._do.droplet_actions.post, droplet_id,
                                       {"type": kind, **params}, write=True)
        return await self._wait(started.body["action"], what,
                                functools.partial(self._do.droplet_actions.get, droplet_id))

    async def _wait(self, action: dict[str, Any], what: str,
                    poll: Callable[..., Any]) -> ActionResult:
        """Poll an action (`poll(action_id)`) until it is no longer in-progress; `errored`
        becomes an error (the action object carries no reason: actions/models/action.yml)."""
        deadline = time.monotonic() + self._settings.action_timeout
        while action.get("status") == "in-progress":
            if time.monotonic() > deadline:
                raise DigitalOceanError(
                    f"DigitalOcean action “{action.get('type')}” ({action['id']}) is still "
                    f"in progress after {self._settings.action_timeout:.0f} s while {what}.",
                    f"Check it in {CONSOLE} before trying again.")
            await asyncio.sleep(self._settings.poll_interval)
            answer: Answer = await self._api.call(what, poll, action["id"])
            action = answer.body["action"]
        if action.get("status") == "errored":
            raise DigitalOceanError(
                f"DigitalOcean action “{action.get('type')}” ({action['id']}) errored while "
                f"{what}.", f"Look at the droplet's history in {CONSOLE}, then try again.")
        return translate.action(action)


async def _tell(on_progress: Progress | None, message: str) -> None:
    if on_progress is not None:
        await on_progress(message)
