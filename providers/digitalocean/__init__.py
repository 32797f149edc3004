"""DigitalOcean: facts, metrics and actions of the family's droplet through the official pydo.

Token scopes (DigitalOcean custom scopes; each from the `security` list of the operation in the
OpenAPI spec, github.com/digitalocean/openapi, specification/resources/...):

    droplet:read                 the droplet, its actions and snapshots (droplets_get,
                                 droplets_list, droplets_list_snapshots, dropletActions_get)
    droplet:update               reboot, power_cycle, shutdown, power_off, power_on, resize,
                                 snapshot (dropletActions_post)
    droplet:create               resize (dropletActions_post's table: resize needs
                                 droplet:update and droplet:create)
    image:create                 snapshot (the same table: droplet:update and image:create)
    image:read                   the droplet's `snapshot_ids` (droplets/models/droplet.yml)
    sizes:read, regions:read     sizes and prices (sizes_list)
    block_storage:read           volumes (volumes_list, volumes_get; the droplet's `volume_ids`)
    block_storage_action:create  grow a volume (volumeActions_post_byId)
    block_storage_action:read    wait for it (volumeActions_get)
    monitoring:read              CPU, bandwidth and filesystem metrics (monitoring_get_*)

Every pydo call is blocking and runs in `asyncio.to_thread`; waiting for an action is an async
poll loop. Errors become `DigitalOceanError` saying what happened and what to do; the token is
never part of a message or log.

    do = DigitalOceanCloud(DigitalOceanSettings(token=..., droplet="family-server"))
    facts = await do.droplet_facts()
    plan = await do.plan_resize("s-4vcpu-8gb")        # show, ask for approval, then:
    result = await do.resize("s-4vcpu-8gb", expect_current=plan.current.slug)
"""
from .cloud import DigitalOceanCloud
from .models import (
    ActionResult, Addresses, DigitalOceanError, DigitalOceanSettings, DropletFacts,
    DropletMetrics, MetricPoint, MetricSeries, Price, ResizePlan, ResizeResult, RetryPolicy,
    SizeInfo, Snapshot, SnapshotResult, VolumeInfo,
)

SCOPES = (
    "droplet:read", "droplet:update", "droplet:create", "image:create", "image:read",
    "sizes:read", "regions:read", "block_storage:read", "block_storage_action:create",
    "block_storage_action:read", "monitoring:read",
)

__all__ = [
    "SCOPES", "ActionResult", "Addresses", "DigitalOceanCloud", "DigitalOceanError",
    "DigitalOceanSettings", "DropletFacts", "DropletMetrics", "MetricPoint", "MetricSeries",
    "Price", "ResizePlan", "ResizeResult", "RetryPolicy", "SizeInfo", "Snapshot",
    "SnapshotResult", "VolumeInfo",
]
