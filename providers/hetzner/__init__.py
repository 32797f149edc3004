"""Hetzner Cloud: facts, metrics and actions of the family's server through the official hcloud.

Every hcloud call is blocking and runs in `asyncio.to_thread`; waiting for an action is an
async poll loop (cancellable, never holding a thread). Errors become `HetznerError` with a
message saying what happened and what to do; the API token is never part of a message or log.

    hetzner = HetznerCloud(HetznerSettings(token=..., server="family-server"))
    facts = await hetzner.server_facts()
    plan = await hetzner.plan_resize("cx32")          # show, ask for approval, then:
    result = await hetzner.resize("cx32", expect_current=plan.current.name)

The models it returns are the provider-neutral ones of spbot.providers.cloud_server.
"""
from __future__ import annotations

from ..cloud_server import (
    ActionResult, MetricPoint, MetricSeries, Price, ResizePlan, ResizeResult, ServerFacts,
    ServerMetrics, ServerTypeInfo, Snapshot, VolumeInfo,
)
from .client import PERIODS, HetznerCloud
from .settings import HetznerError, HetznerSettings, RetryPolicy
from .translate import volume_id_for_device

__all__ = [
    "PERIODS", "ActionResult", "HetznerCloud", "HetznerError", "HetznerSettings", "MetricPoint",
    "MetricSeries", "Price", "ResizePlan", "ResizeResult", "RetryPolicy", "ServerFacts",
    "ServerMetrics", "ServerTypeInfo", "Snapshot", "VolumeInfo", "volume_id_for_device",
]
