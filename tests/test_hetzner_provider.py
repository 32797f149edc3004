"""spbot.providers.hetzner with the real hcloud client against the local fake Hetzner Cloud API."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from decimal import Decimal

import pytest

from spbot.providers.hetzner import (
    HetznerCloud, HetznerError, HetznerSettings, RetryPolicy, volume_id_for_device,
)
from tests.fakes.hetzner_api import FakeHetzner

TOKEN = "hz-secret-token-0123456789"


@pytest.fixture
def fake():
    with FakeHetzner(token=TOKEN) as server:
        yield server


@pytest.fixture
def settings(fake) -> HetznerSettings:
    return HetznerSettings(
        token=TOKEN, server="family-server", api_endpoint=fake.url, timeout=2.0,
        poll_interval=0.01, action_timeout=5.0, shutdown_timeout=0.05,
        retry=RetryPolicy(max_retries=3, backoff_base=0.01, backoff_cap=0.05,
                          rate_limit_max_wait=1.5))


@pytest.fixture
def hetzner(settings) -> HetznerCloud:
    return HetznerCloud(settings)


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog):
    caplog.set_level(logging.DEBUG)
    yield
    assert TOKEN not in caplog.text


def waits_logged(caplog) -> list[float]:
    return [float(m) for m in re.findall(r"in ([\d.]+) s$", caplog.text, re.M)]


# -- facts and metrics ---------------------------------------------------------------------


async def test_server_facts(hetzner):
    facts = await hetzner.server_facts()
    assert (facts.id, facts.name, facts.status) == (42, "family-server", "running")
    assert facts.server_type.name == "cx22"
    assert (facts.server_type.cores, facts.server_type.memory_gb, facts.disk_gb) == (2, 4.0, 40)
    assert (facts.location, facts.city) == ("fsn1", "Falkenstein")
    assert facts.ipv4 == "203.0.113.10"
    assert facts.ipv6 == "2001:db8:1234::/64"
    assert facts.included_traffic_bytes == 20 * 1024**4
    assert facts.outgoing_traffic_bytes == 123_456_789_012
    assert facts.server_type.monthly_price.net == Decimal("3.79")
    assert facts.server_type.monthly_price.gross == Decimal("4.5101")
    assert facts.volume_ids == (100,)


async def test_server_by_id_and_unknown_name(settings, fake):
    by_id = HetznerCloud(dataclasses.replace(settings, server=42))
    assert (await by_id.server_facts()).name == "family-server"
    missing = HetznerCloud(dataclasses.replace(settings, server="nope"))
    with pytest.raises(HetznerError, match="no server named “nope”"):
        await missing.server_facts()


async def test_metrics_cpu_over_a_day(hetzner, fake):
    metrics = await hetzner.metrics("cpu", "24h")
    (cpu,) = metrics.series
    assert (cpu.name, cpu.unit, metrics.step) == ("cpu", "%", 600.0)
    assert len(cpu.points) == 24 * 6 + 1
    assert cpu.points[0].at < cpu.points[-1].at
    assert 0 <= cpu.average <= cpu.peak and cpu.latest is not None


async def test_metrics_network_and_disk_series(hetzner):
    network = await hetzner.metrics("network", "1h")
    assert {s.name for s in network.series} == {
        "network.0.pps.in", "network.0.pps.out",
        "network.0.bandwidth.in", "network.0.bandwidth.out"}
    disk = await hetzner.metrics("disk", "7d")
    assert {s.unit for s in disk.series} == {"IO/s", "bytes/s"}
    with pytest.raises(ValueError):
        await hetzner.metrics("memory", "1h")


# -- actions -------------------------------------------------------------------------------


async def test_reboot_waits_for_the_action(hetzner, fake):
    said = []

    async def progress(message):
        said.append(message)

    result = await hetzner.reboot(on_progress=progress)
    assert (result.command, result.status, result.progress) == ("reboot_server", "success", 100)
    assert fake.commands() == ["reboot_server"]
    assert fake.count("GET", r"/v1/actions/\d+") == fake.action_polls
    assert said == ["rebooting family-server"]


async def test_action_error_is_reported(hetzner, fake):
    fake.fail_action("reboot_server", code="server_error", message="host is being maintained")
    with pytest.raises(HetznerError) as failure:
        await hetzner.reboot()
    assert "“reboot_server” failed" in str(failure.value)
    assert "host is being maintained (server_error)" in str(failure.value)


async def test_create_snapshot(hetzner, fake):
    snap = await hetzner.create_snapshot("before upgrade")
    assert snap.status == "available"
    assert (snap.description, snap.image_size_gb, snap.disk_size_gb) == ("before upgrade", 1.84, 40)
    assert snap.action.command == "create_image"
    assert fake.images[snap.image_id]["labels"] == {"created-by": "spbot"}


async def test_plan_resize_shows_price_difference(hetzner):
    plan = await hetzner.plan_resize("cx32")
    assert (plan.current.name, plan.new.name, plan.location) == ("cx22", "cx32", "fsn1")
    assert plan.possible and plan.disk_gb_after == 40
    assert plan.monthly_difference.net == Decimal("6.80") - Decimal("3.79")
    assert plan.monthly_difference.gross == plan.new.monthly_price.gross - plan.current.monthly_price.gross


async def test_plan_resize_names_problems(hetzner):
    arm = await hetzner.plan_resize("cax11")
    assert not arm.possible and "arm" in arm.problems[0]
    same = await hetzner.plan_resize("cx22")
    assert same.problems == ("the server already is a cx22",)
    with pytest.raises(HetznerError, match="no server type named “cx99”"):
        await hetzner.plan_resize("cx99")
    with pytest.raises(HetznerError, match="cannot resize"):
        await hetzner.resize("cax11")


async def test_resize_shuts_down_changes_type_keeps_disk_powers_on(hetzner, fake):
    said = []

    async def progress(message):
        said.append(message)

    result = await hetzner.resize("cx32", expect_current="cx22", on_progress=progress)
    # Hetzner starts the server when change_type finishes: no needless power-on
    assert fake.commands() == ["shutdown_server", "change_server_type"]
    assert [a.status for a in result.actions] == ["success"] * 2
    server = fake.server()
    assert (server["server_type"]["name"], server["primary_disk_size"], server["status"]) == (
        "cx32", 40, "running")
    assert result.facts.server_type.name == "cx32" and result.facts.disk_gb == 40
    assert said == ["shutting down", "changing type cx22 → cx32"]


async def test_resize_of_a_server_that_was_off_leaves_it_off(hetzner, fake):
    fake.server()["status"] = "off"
    said = []

    async def progress(message):
        said.append(message)

    await hetzner.resize("cx32", on_progress=progress)
    assert fake.commands() == ["change_server_type", "shutdown_server"]
    assert (fake.server()["status"], fake.server()["server_type"]["name"]) == ("off", "cx32")
    assert "it was off before, so shutting it down again" in said[-1]


async def test_resize_powers_on_only_when_the_server_did_not_come_up(hetzner, fake, monkeypatch):
    original = fake._apply

    def stays_off(command, effect):
        original(command, effect)
        if command == "change_server_type":
            fake.server()["status"] = "off"
    monkeypatch.setattr(fake, "_apply", stays_off)
    await hetzner.resize("cx32")
    assert fake.commands() == ["shutdown_server", "change_server_type", "start_server"]
    assert fake.server()["status"] == "running"


async def test_a_resize_sent_twice_after_a_timeout_runs_once(settings, fake):
    """The change_type POST answers too late: whether the client gives up or sends it again,
    Hetzner starts one action (a second is `locked`) and the provider waits for that one."""
    hetzner = HetznerCloud(dataclasses.replace(settings, timeout=0.3))
    await hetzner.server_facts()
    fake.slow(0.6, times=1, method="POST", path=r"/actions/change_type$")
    result = await hetzner.resize("cx32")
    assert fake.commands().count("change_server_type") == 1
    assert fake.server()["server_type"]["name"] == "cx32"
    assert result.facts.status == "running"


async def test_a_second_action_while_one_runs_is_reported_busy(hetzner, fake):
    server = await hetzner.server_facts()
    fake._new_action("create_image", [{"id": server.id, "type": "server"}], image_id=1)
    with pytest.raises(HetznerError) as failure:
        await hetzner.reboot()
    assert "Hetzner is busy: another action is still running on the server" in str(failure.value)
    assert fake.commands() == ["create_image"]


async def test_resize_powers_off_a_guest_that_ignores_shutdown(hetzner, fake):
    fake.ignore_shutdown = True
    await hetzner.resize("cx32")
    assert fake.commands() == ["shutdown_server", "stop_server", "change_server_type"]


async def test_resize_refuses_a_stale_plan(hetzner, fake):
    with pytest.raises(HetznerError, match="now cx22, not cx32"):
        await hetzner.resize("cx42", expect_current="cx32")
    assert fake.commands() == []


async def test_failed_type_change_powers_the_server_back_on(hetzner, fake):
    fake.fail_action("change_server_type", message="server type not available")
    with pytest.raises(HetznerError) as failure:
        await hetzner.resize("cx32")
    assert "server type not available" in str(failure.value)
    assert "powered on again with its old type" in str(failure.value)
    assert fake.commands() == ["shutdown_server", "change_server_type", "start_server"]
    assert (fake.server()["status"], fake.server()["server_type"]["name"]) == ("running", "cx22")


# -- volumes -------------------------------------------------------------------------------


async def test_list_volumes_across_pages(hetzner, fake):
    fake.max_per_page = 1
    volumes = await hetzner.list_volumes()
    assert [(v.id, v.name, v.size_gb, v.server_name) for v in volumes] == [
        (100, "data", 50, "family-server"), (101, "archive", 20, None)]
    assert volumes[0].linux_device == "/dev/disk/by-id/scsi-0HC_Volume_100"
    assert volumes[0].location == "fsn1"
    assert fake.count("GET", "/v1/volumes") == 2


async def test_resize_volume(hetzner, fake):
    volume = await hetzner.resize_volume("data", 60)
    assert (volume.size_gb, fake.volumes[100]["size"]) == (60, 60)
    assert fake.commands() == ["resize_volume"]
    with pytest.raises(HetznerError, match="can only grow"):
        await hetzner.resize_volume(100, 60)
    assert fake.count("POST", r"/v1/volumes/\d+/actions/resize") == 1


async def test_volume_behind_a_block_device(hetzner, tmp_path):
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    for name in ("sda", "sdb", "sdb1"):
        (tmp_path / name).touch()
    (by_id / "scsi-0HC_Volume_100").symlink_to(tmp_path / "sdb")
    (by_id / "scsi-0HC_Volume_100-part1").symlink_to(tmp_path / "sdb1")
    (by_id / "scsi-0QEMU_QEMU_HARDDISK_drive-scsi0").symlink_to(tmp_path / "sda")

    assert volume_id_for_device(tmp_path / "sdb1", by_id) == 100
    assert volume_id_for_device(tmp_path / "sda", by_id) is None
    assert volume_id_for_device("/dev/disk/by-id/scsi-0HC_Volume_7", by_id) == 7
    found = await hetzner.volume_for_device(tmp_path / "sdb", by_id)
    assert (found.id, found.server_name) == (100, "family-server")
    assert await hetzner.volume_for_device(tmp_path / "sda", by_id) is None


# -- failures ------------------------------------------------------------------------------


async def test_token_rejected(settings):
    wrong = HetznerCloud(dataclasses.replace(settings, token="not-the-token"))
    with pytest.raises(HetznerError) as failure:
        await wrong.server_facts()
    message = str(failure.value)
    assert message.startswith("Hetzner rejected the API token: unable to authenticate.")
    assert "Security → API tokens" in message and "not-the-token" not in message


async def test_rate_limit_waits_a_second_not_until_reset(settings, fake, caplog):
    """Reset is when the whole quota is back (an hour when empty): a 429 costs about a second,
    not the 60 s cap."""
    hetzner = HetznerCloud(dataclasses.replace(settings, retry=RetryPolicy(max_retries=3)))
    fake.exhaust()
    started = time.monotonic()
    facts = await asyncio.wait_for(hetzner.server_facts(), 10)
    assert facts.name == "family-server"
    assert time.monotonic() - started < 3.5
    assert all(wait <= 2.0 for wait in waits_logged(caplog))
    assert "answered 429 (rate_limit_exceeded)" in caplog.text


async def test_requests_are_paced_by_remaining(settings, fake, caplog):
    """With two requests left the provider slows down to one per second instead of running
    into 429s."""
    hetzner = HetznerCloud(dataclasses.replace(settings, retry=RetryPolicy(max_retries=3)))
    fake.exhaust(left=2)
    started = time.monotonic()
    await asyncio.wait_for(hetzner.plan_resize("cx32"), 15)
    assert fake.throttled == 0
    assert time.monotonic() - started >= 1.0
    assert "no requests left this hour; pacing" in caplog.text


async def test_rate_limit_wait_is_bounded(settings, fake, caplog):
    capped = dataclasses.replace(settings.retry, rate_limit_max_wait=0.05)
    hetzner = HetznerCloud(dataclasses.replace(settings, retry=capped))
    fake.rate_limit(times=2)
    await hetzner.server_facts()
    assert waits_logged(caplog) == [0.05, 0.05]


async def test_rate_limit_gives_up_after_the_retries(settings, fake):
    capped = dataclasses.replace(settings.retry, rate_limit_max_wait=0.01)
    hetzner = HetznerCloud(dataclasses.replace(settings, retry=capped))
    fake.rate_limit(times=10)
    with pytest.raises(HetznerError, match="still rate limiting after 3 retries"):
        await hetzner.server_facts()
    assert fake.count("GET", "/v1/servers") == 4


async def test_server_errors_then_recovery(hetzner, fake):
    fake.fail(503, "unavailable", "service temporarily unavailable", times=2)
    assert (await hetzner.server_facts()).name == "family-server"
    assert fake.count("GET", "/v1/servers") == 3


async def test_server_errors_persisting_give_a_clear_error(hetzner, fake):
    fake.fail(500, "server_error", "internal error", times=10)
    with pytest.raises(HetznerError) as failure:
        await hetzner.server_facts()
    message = str(failure.value)
    assert "Hetzner Cloud API failed while looking up server family-server" in message
    assert "(server_error: internal error) after 3 retries" in message
    assert "https://status.hetzner.com" in message


async def test_failed_post_with_500_is_not_repeated(hetzner, fake):
    await hetzner.server_facts()
    fake.fail(500, "server_error", "internal error", method="POST")
    with pytest.raises(HetznerError, match="server_error"):
        await hetzner.reboot()
    assert fake.count("POST", r"/v1/servers/42/actions/reboot") == 1
    assert fake.commands() == []


async def test_slow_answer_then_recovery(settings, fake):
    hetzner = HetznerCloud(dataclasses.replace(settings, timeout=0.2))
    fake.slow(0.6, times=1)
    assert (await hetzner.server_facts()).name == "family-server"
    assert fake.count("GET", "/v1/servers") == 2


async def test_no_answer_gives_a_clear_error(settings, fake):
    retry = dataclasses.replace(settings.retry, max_retries=1)
    hetzner = HetznerCloud(dataclasses.replace(settings, timeout=0.2, retry=retry))
    fake.slow(0.6, times=5)
    with pytest.raises(HetznerError, match=r"did not answer within 0.2 s .* \(tried 2 times\)"):
        await hetzner.server_facts()


async def test_a_conflict_answer_is_retried(hetzner, fake):
    """409 `conflict` ("the resource has changed during the request, please retry") changed
    nothing, so even a write is sent again."""
    await hetzner.server_facts()
    fake.fail(409, "conflict", "The resource has changed during the request, please retry",
              method="POST", path=r"/actions/reboot$")
    result = await hetzner.reboot()
    assert result.status == "success"
    assert fake.count("POST", r"/v1/servers/42/actions/reboot") == 2
    assert fake.commands() == ["reboot_server"]
