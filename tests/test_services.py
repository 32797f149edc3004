"""systemd units through a recording systemctl that prints the real `systemctl show` format."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from spbot.system.services import (PROPERTIES, ServiceError, ServicesParams, UnitNameError,
                                   failed_units, normalize_unit, parse_failed, parse_show,
                                   parse_timestamp, restart, system_summary, unit_state, unit_states)
from tests.fakebin import FakeBin, Rule

SHOW = "--property=Id,ActiveState,SubState,LoadState,ActiveEnterTimestamp,MemoryCurrent,Result"

# systemctl prints the requested properties in its own (D-Bus) order, one unit per block
NGINX = """Result=success
MemoryCurrent=48234496
Id=nginx.service
LoadState=loaded
ActiveState=active
SubState=running
ActiveEnterTimestamp=Mon 2026-11-23 10:00:01 UTC
"""
BACKUP = """Result=exit-code
MemoryCurrent=[not set]
Id=restic-backup.service
LoadState=loaded
ActiveState=failed
SubState=failed
ActiveEnterTimestamp=Sun 2026-11-22 03:00:00 UTC
"""
MISSING = """Result=success
MemoryCurrent=[not set]
Id=gitea.service
LoadState=not-found
ActiveState=inactive
SubState=dead
ActiveEnterTimestamp=
"""
TIMER = """Result=success
Id=restic-backup.timer
LoadState=loaded
ActiveState=active
SubState=waiting
ActiveEnterTimestamp=@1795435200
"""
FAILED_LIST = (
    "restic-backup.service loaded failed failed Restic backup of nextcloud\n"
    "nginx.service         loaded failed failed Nginx Web Server\n"
    "● acme-example.org.service loaded failed failed Renew ACME certificate for example.org\n"
)
UNITS = ["nginx", "restic-backup.service", "gitea", "restic-backup.timer"]


@pytest.fixture
def bins(tmp_path):
    return FakeBin(tmp_path)


def params_for(bins: FakeBin, **extra) -> ServicesParams:
    return ServicesParams(units=UNITS, tool_path=str(bins.dir), **extra)


# --------------------------------------------------------------------------- names

@pytest.mark.parametrize("name, unit", [
    ("nginx", "nginx.service"), ("nginx.service", "nginx.service"),
    ("restic-backup.timer", "restic-backup.timer"), ("getty@tty1.service", "getty@tty1.service"),
    ("dbus.socket", "dbus.socket"), ("var-lib-data.mount", "var-lib-data.mount"),
    ("phpfpm-nextcloud", "phpfpm-nextcloud.service"), ("matrix-synapse", "matrix-synapse.service"),
    ("  gitea ", "gitea.service"),
])
def test_valid_names(name, unit):
    assert normalize_unit(name) == unit


@pytest.mark.parametrize("name", [
    "foo;rm -rf /", "--force", "-nginx", "", "nginx service", "$(reboot)", "a/b.service",
    "nginx.", "../etc/passwd", "x" * 300, "nginx\n.service", "`id`",
])
def test_invalid_names(name):
    with pytest.raises(UnitNameError):
        normalize_unit(name)


def test_configured_units_are_normalized_and_checked():
    params = ServicesParams(units=["nginx", "nginx.service", "backup.timer"])
    assert params.units == ["nginx.service", "backup.timer"]
    assert params.allowed("nginx") == "nginx.service"
    with pytest.raises(UnitNameError, match="not one of the configured units"):
        params.allowed("sshd")
    with pytest.raises(ValidationError):
        ServicesParams(units=["ok", "bad;name"])


async def test_bad_or_unconfigured_names_run_nothing(bins):
    bins.add("systemctl", [Rule(stdout=NGINX)])
    params = params_for(bins)
    for name in ("foo;rm -rf /", "--force", "sshd", "sshd.service", "reboot.target"):
        with pytest.raises(UnitNameError):
            await restart(params, name)
        with pytest.raises(UnitNameError):
            await unit_states(params, [name])
    assert bins.calls() == []


# --------------------------------------------------------------------------- show

def test_parse_show_blocks():
    blocks = parse_show(NGINX + "\n" + BACKUP)
    assert [b["Id"] for b in blocks] == ["nginx.service", "restic-backup.service"]
    assert blocks[1]["MemoryCurrent"] == "[not set]"


def test_parse_timestamps():
    assert parse_timestamp("Mon 2026-11-23 10:00:01 UTC") == datetime(2026, 11, 23, 10, 0, 1,
                                                                      tzinfo=timezone.utc)
    assert parse_timestamp("@1795435200") == datetime.fromtimestamp(1795435200, timezone.utc)
    cet = parse_timestamp("Mon 2026-11-23 11:00:01 CET")
    assert cet == datetime(2026, 11, 23, 10, 0, 1, tzinfo=timezone.utc)
    assert parse_timestamp("") is None and parse_timestamp("n/a") is None
    assert parse_timestamp("Mon 2026-11-23 10:00:01").tzinfo is not None   # local time


async def test_unit_states_in_one_call(bins):
    bins.add("systemctl", [Rule(match=["show", SHOW, "--no-pager", "--", "**"],
                                stdout="\n".join([NGINX, BACKUP, MISSING, TIMER]))])
    states = await unit_states(params_for(bins))
    [call] = bins.calls("systemctl")
    assert call.argv == ["show", SHOW, "--no-pager", "--", "nginx.service", "restic-backup.service",
                         "gitea.service", "restic-backup.timer"]
    nginx, backup, gitea, timer = states
    assert nginx.unit == "nginx.service" and nginx.healthy and nginx.sub_state == "running"
    assert nginx.memory_bytes == 48234496
    assert nginx.active_since == datetime(2026, 11, 23, 10, 0, 1, tzinfo=timezone.utc)
    assert backup.active_state == "failed" and backup.result == "exit-code" and not backup.healthy
    assert backup.memory_bytes is None
    assert not gitea.found and gitea.active_since is None
    assert timer.memory_bytes is None and timer.sub_state == "waiting"
    assert timer.active_since == datetime.fromtimestamp(1795435200, timezone.utc)
    assert ",".join(PROPERTIES) in SHOW


async def test_one_unit_by_short_name(bins):
    bins.add("systemctl", [Rule(match=["show", SHOW, "--no-pager", "--", "nginx.service"], stdout=NGINX)])
    state = await unit_state(params_for(bins), "nginx")
    assert state.unit == "nginx.service" and state.healthy


async def test_systemctl_failure_is_a_clear_error(bins):
    bins.add("systemctl", [Rule(exit=1, stderr="System has not been booted with systemd as init "
                                               "system (PID 1). Can't operate.\nFailed to connect "
                                               "to bus: Host is down\n")])
    with pytest.raises(ServiceError, match="Host is down"):
        await unit_states(params_for(bins))


async def test_missing_systemctl(tmp_path):
    params = ServicesParams(units=["nginx"], tool_path=str(tmp_path))
    with pytest.raises(ServiceError, match="not installed"):
        await unit_states(params)


async def test_no_units_configured_runs_nothing(bins):
    bins.add("systemctl", [])
    assert await unit_states(ServicesParams(tool_path=str(bins.dir))) == []
    assert bins.calls() == []


# --------------------------------------------------------------------------- restart

async def test_restart_then_reports_state(bins):
    bins.add("systemctl", [Rule(match=["restart", "--", "nginx.service"]),
                           Rule(match=["show", "**"], stdout=NGINX)])
    state = await restart(params_for(bins), "nginx")
    assert [c.argv[:3] for c in bins.calls("systemctl")] == [["restart", "--", "nginx.service"],
                                                             ["show", SHOW, "--no-pager"]]
    assert state.healthy


async def test_restart_failure(bins):
    bins.add("systemctl", [Rule(match=["restart", "**"], exit=1,
                                stderr="Job for nginx.service failed because the control process "
                                       "exited with error code.\nSee \"systemctl status nginx.service\""
                                       " and \"journalctl -xeu nginx.service\" for details.\n")])
    with pytest.raises(ServiceError, match="restarting nginx.service failed"):
        await restart(params_for(bins), "nginx.service")


async def test_restart_that_hangs_times_out(bins):
    bins.add("systemctl", [Rule(match=["restart", "**"], sleep=30)])
    with pytest.raises(ServiceError, match="did not answer"):
        await restart(params_for(bins, restart_timeout=0.3), "nginx")


# --------------------------------------------------------------------------- failed units

def test_parse_failed_lines():
    units = parse_failed(FAILED_LIST)
    assert [u.unit for u in units] == ["restic-backup.service", "nginx.service",
                                       "acme-example.org.service"]
    assert units[0].description == "Restic backup of nextcloud"
    assert units[2].sub_state == "failed"
    assert parse_failed("") == []


async def test_failed_units(bins):
    bins.add("systemctl", [Rule(match=["list-units", "--state=failed", "--plain", "--no-legend",
                                       "--no-pager"], stdout=FAILED_LIST)])
    units = await failed_units(params_for(bins))
    assert len(units) == 3 and units[1].unit == "nginx.service"


# --------------------------------------------------------------------------- summary

async def test_system_summary_is_real():
    summary = await system_summary()
    assert summary.uptime_seconds > 0
    assert summary.memory_total > summary.memory_available > 0
    assert 0 <= summary.memory_percent <= 100
    assert summary.load_1 >= 0 and summary.cpu_count >= 1
    assert summary.boot_time.tzinfo is not None
