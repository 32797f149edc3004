"""spbot.providers.digitalocean with the real pydo client against the local fake DigitalOcean API."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from decimal import Decimal

import pytest

from spbot.providers.digitalocean import (
    DigitalOceanCloud, DigitalOceanError, DigitalOceanSettings, RetryPolicy,
)
from tests.fakes.digitalocean_api import DROPLET_ID, FakeDigitalOcean

TOKEN = "dop_v1_secret-token-0123456789"


@pytest.fixture
def fake():
    with FakeDigitalOcean(token=TOKEN) as server:
        yield server


@pytest.fixture
def settings(fake) -> DigitalOceanSettings:
    return DigitalOceanSettings(
        token=TOKEN, droplet="family-server", api_endpoint=fake.url,
        metadata_url=fake.metadata_url, metadata_timeout=0.5, timeout=2.0, poll_interval=0.01,
        action_timeout=5.0, shutdown_timeout=0.05,
        retry=RetryPolicy(max_retries=3, backoff_base=0.01, backoff_cap=0.05,
                          rate_limit_max_wait=3.0))


@pytest.fixture
def do(settings) -> DigitalOceanCloud:
    return DigitalOceanCloud(settings)


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog):
    caplog.set_level(logging.DEBUG)
    yield
    assert TOKEN not in caplog.text


def retry_waits(caplog) -> list[float]:
    return [float(m) for m in re.findall(r"retry \d+ of \d+ in ([\d.]+) s$", caplog.text, re.M)]


async def progress_log():
    said: list[str] = []

    async def progress(message: str) -> None:
        said.append(message)
    return said, progress


# -- finding the droplet and its facts -----------------------------------------------------


async def test_droplet_facts_from_the_metadata_id(do, fake):
    facts = await do.droplet_facts()
    assert (facts.id, facts.name, facts.status, facts.locked) == (DROPLET_ID, "family-server",
                                                                  "active", False)
    assert (facts.vcpus, facts.memory_mb, facts.disk_gb) == (2, 4096, 80)
    assert (facts.size.slug, facts.region, facts.region_name) == ("s-2vcpu-4gb", "fra1",
                                                                  "Frankfurt 1")
    assert facts.addresses.ipv4_public == ("203.0.113.10",)
    assert facts.addresses.ipv4_private == ("10.114.0.2",)
    assert facts.addresses.ipv6_public == ("2a03:b0c0:3:d0::1a:1/64",)
    assert facts.monthly_price.amount == Decimal("24.0") and facts.monthly_price.currency == "USD"
    assert facts.volume_ids == ("506f78a4-e098-11e5-ad9f-000f53306ae1",)
    assert ("GET", "/metadata/v1/id") in fake.requests
    assert fake.count("GET", "/v2/droplets") == 0  # the id came from the metadata service


async def test_droplet_by_name_when_not_on_a_droplet(settings, fake):
    fake.metadata_droplet = None
    facts = await DigitalOceanCloud(settings).droplet_facts()
    assert facts.id == DROPLET_ID and fake.count("GET", "/v2/droplets") == 1
    unreachable = dataclasses.replace(settings, metadata_url="http://127.0.0.1:9/metadata/v1/id")
    assert (await DigitalOceanCloud(unreachable).droplet_facts()).name == "family-server"
    missing = DigitalOceanCloud(dataclasses.replace(settings, droplet="nope"))
    with pytest.raises(DigitalOceanError, match="no droplet named “nope”"):
        await missing.droplet_facts()


async def test_plain_http_is_refused_except_on_loopback(settings):
    with pytest.raises(DigitalOceanError, match="not HTTPS"):
        DigitalOceanCloud(dataclasses.replace(settings, api_endpoint="http://api.example.com"))


# -- shapes: pagination, error envelope ----------------------------------------------------


async def test_lists_follow_links_pages_to_meta_total(do, fake):
    fake.max_per_page = 2
    sizes = await do.sizes()
    assert [s.slug for s in sizes][:3] == ["s-1vcpu-2gb", "s-2vcpu-4gb", "s-4vcpu-8gb"]
    assert len(sizes) == 6 and fake.count("GET", "/v2/sizes") == 3
    fake.max_per_page = 1
    volumes = await do.list_volumes()  # fra1 holds "data" (attached) and "archive" (not)
    assert [(v.name, v.size_gb, v.droplet_ids) for v in volumes] == [("data", 100, (DROPLET_ID,))]
    assert fake.count("GET", "/v2/volumes") == 2
    assert volumes[0].linux_device == "/dev/disk/by-id/scsi-0DO_Volume_data"


async def test_error_envelope_becomes_the_error(settings, fake):
    gone = DigitalOceanCloud(dataclasses.replace(settings, droplet=999, metadata_url=None))
    with pytest.raises(DigitalOceanError) as failure:
        await gone.droplet_facts()
    error = failure.value
    assert (error.status, error.code) == (404, "not_found")
    assert "The resource you requested could not be found." in str(error)
    assert re.fullmatch(r"[0-9a-f-]{36}", error.request_id)
    fake.fail(403, "forbidden", "You are not authorized to perform this operation",
              path="/v2/sizes")
    with pytest.raises(DigitalOceanError, match="lacks a scope") as failure:
        await DigitalOceanCloud(settings).sizes()
    assert failure.value.code == "forbidden"


async def test_token_rejected(settings):
    wrong = DigitalOceanCloud(dataclasses.replace(settings, token="not-the-token"))
    with pytest.raises(DigitalOceanError) as failure:
        await wrong.droplet_facts()
    message = str(failure.value)
    assert message.startswith("DigitalOcean rejected the API token: Unable to authenticate you.")
    assert "API → Tokens" in message and "not-the-token" not in message


# -- actions -------------------------------------------------------------------------------


async def test_reboot_is_polled_to_completed(do, fake):
    said, progress = await progress_log()
    result = await do.reboot(on_progress=progress)
    assert (result.type, result.status, result.resource_id) == ("reboot", "completed",
                                                                DROPLET_ID)
    assert result.completed is not None
    assert fake.action_types() == ["reboot"]
    assert fake.count("GET", rf"/v2/droplets/{DROPLET_ID}/actions/\d+") == fake.action_polls
    assert said == ["rebooting"]


async def test_errored_action_is_reported(do, fake):
    fake.fail_action("power_cycle")
    with pytest.raises(DigitalOceanError) as failure:
        await do.power_cycle()
    assert re.search(r"action “power_cycle” \(\d+\) errored while power cycling", str(failure.value))
    assert "droplet's history" in str(failure.value)
    assert fake.droplet()["locked"] is False


async def test_a_second_action_while_one_runs_is_refused(do, fake):
    fake.droplet()["locked"] = True
    with pytest.raises(DigitalOceanError, match="pending event") as failure:
        await do.reboot()
    assert failure.value.status == 422 and fake.action_types() == []


async def test_snapshot_create_and_list(do, fake):
    result = await do.create_snapshot("before upgrade")
    assert (result.snapshot.name, result.action.type, result.action.status) == (
        "before upgrade", "snapshot", "completed")
    assert result.snapshot.min_disk_gb == 80 and result.snapshot.regions == ("fra1",)
    fake.max_per_page = 1
    assert [s.name for s in await do.list_snapshots()] == ["family-server-before-upgrade",
                                                          "before upgrade"]


# -- resize --------------------------------------------------------------------------------


async def test_plan_resize_price_difference_from_sizes(do):
    plan = await do.plan_resize("s-4vcpu-8gb")
    assert (plan.current.slug, plan.new.slug, plan.region) == ("s-2vcpu-4gb", "s-4vcpu-8gb",
                                                               "fra1")
    assert plan.possible and not plan.grow_disk and plan.disk_gb_after == 80
    assert plan.monthly_difference.amount == Decimal("48.0") - Decimal("24.0")
    grow = await do.plan_resize("s-4vcpu-8gb", grow_disk=True)
    assert grow.disk_gb_after == 160
    down = await do.plan_resize("s-1vcpu-2gb")
    assert down.monthly_difference.amount == Decimal("-12.0")
    assert "smaller than the droplet's 80 GB" in down.problems[0]


async def test_plan_resize_names_problems(do):
    assert (await do.plan_resize("s-2vcpu-4gb")).problems == ("the droplet already is a "
                                                               "s-2vcpu-4gb",)
    assert "cannot be ordered in fra1" in (await do.plan_resize("m-2vcpu-16gb")).problems[-1]
    with pytest.raises(DigitalOceanError, match="no droplet size “s-99”"):
        await do.plan_resize("s-99")
    with pytest.raises(DigitalOceanError, match="cannot resize"):
        await do.resize("c-2")


async def test_resize_shuts_down_resizes_and_powers_on(do, fake):
    said, progress = await progress_log()
    result = await do.resize("s-4vcpu-8gb", expect_current="s-2vcpu-4gb", on_progress=progress)
    assert fake.action_types() == ["shutdown", "resize", "power_on"]
    assert [a.status for a in result.actions] == ["completed"] * 3
    assert (result.facts.size.slug, result.facts.disk_gb, result.facts.status) == (
        "s-4vcpu-8gb", 80, "active")
    assert said == ["shutting down", "resizing s-2vcpu-4gb → s-4vcpu-8gb", "powering on"]


async def test_resize_growing_the_disk_of_a_droplet_that_was_off(do, fake):
    fake.droplet()["status"] = "off"
    result = await do.resize("s-4vcpu-8gb", grow_disk=True)
    assert fake.action_types() == ["resize"]
    assert (result.facts.disk_gb, result.facts.status) == (160, "off")


async def test_resize_powers_off_a_guest_that_ignores_shutdown(do, fake):
    fake.ignore_shutdown = True
    await do.resize("s-4vcpu-8gb")
    assert fake.action_types() == ["shutdown", "power_off", "resize", "power_on"]


async def test_failed_resize_powers_the_droplet_back_on(do, fake):
    fake.fail_action("resize")
    with pytest.raises(DigitalOceanError) as failure:
        await do.resize("s-4vcpu-8gb")
    assert "errored while resizing" in str(failure.value)
    assert "powered on again with its old size" in str(failure.value)
    assert fake.action_types() == ["shutdown", "resize", "power_on"]
    assert (fake.droplet()["status"], fake.droplet()["size_slug"]) == ("active", "s-2vcpu-4gb")


async def test_resize_refuses_a_stale_plan(do, fake):
    with pytest.raises(DigitalOceanError, match="now s-2vcpu-4gb, not s-1vcpu-2gb"):
        await do.resize("s-4vcpu-8gb", expect_current="s-1vcpu-2gb")
    assert fake.action_types() == []


# -- volumes -------------------------------------------------------------------------------


async def test_volume_grows_only(do, fake):
    volume = await do.resize_volume("data", 150)
    assert volume.size_gb == 150 and fake.action_types() == ["resize_volume"]
    assert fake.count("GET", r"/v2/volumes/[0-9a-f-]+/actions/\d+") == fake.action_polls
    with pytest.raises(DigitalOceanError, match="can only grow: “data” is already 150 GB"):
        await do.resize_volume(volume.id, 150)
    with pytest.raises(DigitalOceanError, match="at most 16384 GB"):
        await do.resize_volume("data", 20000)
    with pytest.raises(DigitalOceanError, match="No volume “archive” is attached"):
        await do.resize_volume("archive", 60)
    assert fake.count("POST", r"/v2/volumes/[0-9a-f-]+/actions") == 1


async def test_errored_volume_resize(do, fake):
    fake.fail_action("resize_volume")
    with pytest.raises(DigitalOceanError, match="“resize_volume” .* errored while resizing the "
                                                "volume"):
        await do.resize_volume("data", 150)
    assert fake.volumes["506f78a4-e098-11e5-ad9f-000f53306ae1"]["size_gigabytes"] == 100


# -- metrics -------------------------------------------------------------------------------


async def test_cpu_metrics_are_busy_percent(do):
    metrics = await do.metrics("cpu", "24h")
    (cpu,) = metrics.series
    assert (cpu.name, cpu.unit, metrics.period) == ("cpu", "%", "24h")
    assert len(cpu.points) > 100 and cpu.points[0].at < cpu.points[-1].at
    assert cpu.average == pytest.approx(30.0) and cpu.peak == pytest.approx(30.0)


async def test_bandwidth_and_filesystem_series(do):
    network = await do.metrics("network", "1h")
    assert [(s.name, s.unit) for s in network.series] == [
        ("bandwidth.public.inbound", "Mbit/s"), ("bandwidth.public.outbound", "Mbit/s"),
        ("bandwidth.private.inbound", "Mbit/s"), ("bandwidth.private.outbound", "Mbit/s")]
    assert 1.5 <= network.series[0].peak <= 1.9
    disk = await do.metrics("disk", "7d")
    sizes = {s.name: s.latest for s in disk.series}
    assert sizes["filesystem.size./"] == 80 * 1024**3
    assert sizes["filesystem.free./mnt/data"] == 50 * 1024**3
    with pytest.raises(ValueError):
        await do.metrics("memory", "1h")


# -- rate limits, server errors, timeouts --------------------------------------------------


async def test_429_waits_for_ratelimit_reset_then_succeeds(do, fake, caplog):
    fake.rate_limit(times=1, reset_in=1.0)
    started = time.monotonic()
    assert (await asyncio.wait_for(do.sizes(), 10))[0].slug == "s-1vcpu-2gb"
    assert time.monotonic() - started >= 0.9  # reset is at least a second away
    assert fake.count("GET", "/v2/sizes") == 2
    assert "DigitalOcean API answered 429 while listing droplet sizes; retry 1 of 3" in caplog.text
    assert all(0.9 <= wait <= 2.0 for wait in retry_waits(caplog))


async def test_429_wait_is_bounded_and_gives_up(settings, fake):
    capped = dataclasses.replace(settings.retry, rate_limit_max_wait=0.02)
    do = DigitalOceanCloud(dataclasses.replace(settings, retry=capped))
    fake.rate_limit(times=10, reset_in=3600)
    started = time.monotonic()
    with pytest.raises(DigitalOceanError, match="still rate limiting after 3 retries") as failure:
        await do.sizes()
    assert time.monotonic() - started < 2 and failure.value.status == 429
    assert fake.count("GET", "/v2/sizes") == 4


async def test_an_empty_quota_paces_the_next_request(settings, fake, caplog):
    """`ratelimit-remaining: 0` on an answer: the next request waits for `ratelimit-reset`
    (about an hour away here, so the bounded wait) instead of running into a 429."""
    capped = dataclasses.replace(settings.retry, rate_limit_max_wait=0.3)
    paced = DigitalOceanCloud(dataclasses.replace(settings, retry=capped))
    fake.remaining = 1
    await paced.sizes()
    started = time.monotonic()
    await paced.sizes()
    assert 0.25 <= time.monotonic() - started < 2.0
    assert "no requests left this hour; pacing 0.30 s" in caplog.text


async def test_5xx_retried_then_success(do, fake):
    fake.fail(503, "service_unavailable", "Service Unavailable", times=2, path="/v2/sizes")
    assert len(await do.sizes()) == 6
    assert fake.count("GET", "/v2/sizes") == 3


async def test_5xx_persisting_gives_a_clear_error(do, fake):
    fake.fail(500, "server_error", "Unexpected server-side error", times=10, path="/v2/sizes")
    with pytest.raises(DigitalOceanError) as failure:
        await do.sizes()
    message = str(failure.value)
    assert ("The DigitalOcean API failed while listing droplet sizes (500 server_error: "
            "Unexpected server-side error) after 3 retries.") in message
    assert "https://status.digitalocean.com" in message
    assert fake.count("GET", "/v2/sizes") == 4


async def test_pydo_does_not_retry_on_its_own(settings, fake):
    once = DigitalOceanCloud(dataclasses.replace(settings, retry=RetryPolicy(max_retries=0)))
    fake.fail(503, "service_unavailable", "Service Unavailable", times=5, path="/v2/sizes")
    with pytest.raises(DigitalOceanError, match="after 0 retries"):
        await once.sizes()
    assert fake.count("GET", "/v2/sizes") == 1


async def test_failed_post_with_500_is_not_repeated(do, fake):
    await do.droplet_facts()
    fake.fail(500, method="POST")
    with pytest.raises(DigitalOceanError, match="server_error"):
        await do.reboot()
    assert fake.count("POST", rf"/v2/droplets/{DROPLET_ID}/actions") == 1


async def test_slow_answer_then_recovery_and_no_answer(settings, fake):
    do = DigitalOceanCloud(dataclasses.replace(settings, timeout=0.2))
    fake.slow(0.6, times=1, path="/v2/sizes")
    assert len(await do.sizes()) == 6
    assert fake.count("GET", "/v2/sizes") == 2
    fake.slow(0.6, times=10, path="/v2/sizes")
    with pytest.raises(DigitalOceanError, match=r"did not answer within 0.2 s .* \(tried 4 times\)"):
        await do.sizes()


# -- the fake's wire shapes, as pydo receives them ------------------------------------------


def test_the_fake_speaks_the_spec_shapes(fake):
    """shared/pages.yml (absolute first/prev/next/last, `{}` on one page), shared/meta.yml,
    shared/models/error.yml and the ratelimit-* headers (shared/headers.yml) on every answer."""
    import httpx
    auth = {"Authorization": f"Bearer {TOKEN}"}
    middle = httpx.get(f"{fake.url}/v2/sizes?page=2&per_page=2", headers=auth)
    body = middle.json()
    assert set(body) == {"sizes", "links", "meta"} and body["meta"] == {"total": 6}
    assert set(body["links"]["pages"]) == {"first", "prev", "next", "last"}
    assert body["links"]["pages"]["next"] == f"{fake.url}/v2/sizes?page=3&per_page=2"
    assert httpx.get(f"{fake.url}/v2/sizes", headers=auth).json()["links"] == {}
    missing = httpx.get(f"{fake.url}/v2/droplets/1", headers=auth)
    assert missing.status_code == 404
    assert set(missing.json()) == {"id", "message", "request_id"}
    for answer in (middle, missing):
        assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= set(answer.headers)
    assert httpx.get(f"{fake.url}/metadata/v1/id").text == str(DROPLET_ID)
