"""Health checks that speak first: failed systemd units and the TLS certificates of the family's domains.

Both run on the scheduler and go through the same alert machinery as the disk rules
(spbot.diskwatch.apply_finding → bot.alerts): one alert per unit or domain and condition,
re-notified while it stays bad, a recovery notice when it clears, persisted across restarts.
"""
from __future__ import annotations

import asyncio
import fnmatch
import time
import weakref
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .config import Duration, config_section
from .diskwatch import Finding, apply_finding
from .logs import get_logger
from .system.services import FailedUnit, ServiceError, ServicesParams, failed_units
from .system.tls import CertStatus, check_certificate

if TYPE_CHECKING:
    from .bot import Bot

log = get_logger(__name__)

CHECK_ALERT = "health:failed-units-check"
UNIT_PREFIX = "unit:"
TLS_PREFIX = "tls:"
INVALID_KINDS = ("hostname_mismatch", "verification", "handshake", "not_yet_valid")


@config_section("services")
class ServicesSettings(ServicesParams):
    """[services]: the units !services shows and !service restart may restart."""
    model_config = ConfigDict(extra="forbid")
    timeout: Duration = Field(15.0, description="How long one systemctl query may take.")
    restart_timeout: Duration = Field(120.0, description="How long !service restart may take.")


@config_section("health")
class HealthSettings(BaseModel):
    """[health]: the failed-units and certificate checks."""
    model_config = ConfigDict(extra="forbid")
    failed_units_interval: Duration = Field(
        300.0,
        description="How often failed systemd units are looked for; 0: never.")
    failed_units_ignore: list[str] = Field(
        default_factory=list,
        description="Units (fnmatch patterns) whose failure is not alerted.")
    systemd_dir: Path = Field(
        Path("/run/systemd/system"),
        description="Exists when systemd runs the machine (otherwise the unit check is off).")
    tls_domains: list[str] = Field(
        default_factory=list, examples=[["example.org", "mail.example.org:993"]],
        description="Certificates to watch: \"example.org\" or \"host:port\".")
    tls_interval: Duration = Field(21600.0, description="How often the certificates are checked.")
    tls_warn_days: float = Field(
        14.0, gt=0,
        description="Alert (warning) when a certificate expires within this many days.")
    tls_critical_days: float = Field(
        3.0, ge=0,
        description="Alert (critical) when a certificate expires within this many days.")
    tls_timeout: Duration = Field(10.0, description="How long one certificate check may take.")
    tls_ca_file: Path | None = Field(
        None,
        description="A private CA to check certificates against instead of the system's trust store.")
    renotify: Duration = Field(86400.0, description="How often an alert that still holds is repeated.")

    @field_validator("tls_domains")
    @classmethod
    def _domains(cls, values: list[str]) -> list[str]:
        for value in values:
            parse_target(value)
        return values


def parse_target(value: str) -> tuple[str, int]:
    """'example.org' → ('example.org', 443); 'host:8443' → ('host', 8443)."""
    host, sep, port = value.strip().rpartition(":")
    if not sep:
        host, port = value.strip(), "443"
    if not host or any(c in host for c in "/ @") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: expected a domain such as cloud.example.org or host:port")
    return host, int(port)


def target_name(host: str, port: int) -> str:
    return host if port == 443 else f"{host}:{port}"


# --------------------------------------------------------------------------- rules

def _date(status: CertStatus) -> str:
    return status.cert.not_after.strftime("%Y-%m-%d") if status.cert else "unknown date"


def _days(days: float) -> str:
    whole = max(0, int(days))
    return "less than a day" if whole == 0 else f"{whole} day{'s' if whole != 1 else ''}"


def tls_findings(status: CertStatus, settings: HealthSettings) -> list[Finding]:
    """What one certificate check means: unreachable, invalid and expiry, each its own alert."""
    name = target_name(status.host, status.port)
    base = f"{TLS_PREFIX}{name}"
    unreachable = Finding(f"{base}:unreachable", None, f"{name} answers over HTTPS again")
    if status.error_kind in ("unreachable", "timeout"):
        unreachable.severity = "warning"
        unreachable.text = f"{name} cannot be reached over HTTPS: {status.error}"
        unreachable.todo = ("check that the web server runs (!services) and that the domain's DNS "
                            "points to this server")
        return [unreachable]      # nothing is known about the certificate this time
    renewal = (f"certificates renew by themselves (ACME / Let's Encrypt): check the renewal service "
               f"on the server (systemctl list-units 'acme-*') and that DNS for {status.server_name} "
               f"points here")
    invalid = Finding(f"{base}:invalid", None, f"the certificate of {name} is accepted again")
    if status.error_kind in INVALID_KINDS:
        invalid.severity = "critical"
        invalid.text = f"the certificate of {name} is not valid: {status.error}; browsers and apps refuse it"
        invalid.todo = renewal
    expiry = Finding(f"{base}:expiry", None,
                     f"the certificate of {name} is renewed: valid until {_date(status)}")
    expired = status.error_kind == "expired" or (status.days_left is not None and status.days_left <= 0)
    if expired:
        expiry.severity = "critical"
        expiry.text = f"the certificate of {name} has expired ({_date(status)}): browsers and apps refuse it"
        expiry.todo = renewal
    elif status.days_left is not None and status.days_left < settings.tls_warn_days:
        expiry.severity = "critical" if status.days_left < settings.tls_critical_days else "warning"
        expiry.text = f"the certificate of {name} expires in {_days(status.days_left)} ({_date(status)})"
        expiry.todo = renewal
    return [unreachable, invalid, expiry]


def _ignored(unit: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(unit, p) for p in patterns)


def unit_finding(unit: FailedUnit, configured: list[str]) -> Finding:
    journal = f"journalctl -u {unit.unit} -n 50"
    if unit.unit in configured:
        return Finding(f"{UNIT_PREFIX}{unit.unit}:failed", "critical",
                       f"{unit.unit} has failed" + (f" ({unit.description})" if unit.description else ""),
                       f"try !service restart {unit.unit}; if it fails again, read its log on the "
                       f"server: {journal}")
    return Finding(f"{UNIT_PREFIX}{unit.unit}:failed", "warning",
                   f"{unit.unit} has failed" + (f" ({unit.description})" if unit.description else ""),
                   f"read its log on the server ({journal}), then systemctl restart {unit.unit} "
                   f"or systemctl reset-failed {unit.unit}")


# --------------------------------------------------------------------------- checks

class HealthWatch:
    def __init__(self, bot: "Bot", settings: HealthSettings, services: ServicesSettings):
        self.bot = bot
        self.settings = settings
        self.services = services

    def systemd_running(self) -> bool:
        return self.settings.systemd_dir.is_dir()

    async def failed(self) -> list[FailedUnit]:
        """Failed units that are not ignored; ServiceError when systemctl cannot answer."""
        units = await failed_units(self.services)
        return [u for u in units if not _ignored(u.unit, self.settings.failed_units_ignore)]

    async def check_units(self, now: float | None = None) -> None:
        """Scheduler job: an alert per failed unit, recovery when it is no longer failed."""
        if not self.systemd_running():
            return
        try:
            failed = await self.failed()
        except ServiceError as exc:
            await self._apply(Finding(CHECK_ALERT, "warning", f"I cannot check for failed services: {exc}",
                                      "check systemd on the server: systemctl --failed"), now)
            return
        except Exception:
            log.exception("failed_units_check_crashed")
            return
        await self._apply(Finding(CHECK_ALERT, None, "checking for failed services works again"), now)
        names = {u.unit for u in failed}
        for unit in failed:
            await self._apply(unit_finding(unit, self.services.units), now)
        for alert in await self.bot.alerts.active(UNIT_PREFIX):
            unit = alert.key[len(UNIT_PREFIX):].rpartition(":")[0]
            if unit not in names:
                await self._apply(Finding(alert.key, None, f"{unit} runs again (no longer failed)"), now)

    async def check_tls(self, now: float | None = None) -> list[CertStatus]:
        """Scheduler job: every configured domain's certificate, checked concurrently."""
        s = self.settings
        targets = [parse_target(d) for d in s.tls_domains]
        try:
            statuses = await asyncio.gather(*(
                check_certificate(host, port, timeout=s.tls_timeout,
                                  ca_file=str(s.tls_ca_file) if s.tls_ca_file else None)
                for host, port in targets))
            for status in statuses:
                for finding in tls_findings(status, s):
                    await self._apply(finding, now)
        except Exception:
            log.exception("tls_check_crashed")
            return []
        return list(statuses)

    async def _apply(self, finding: Finding, now: float | None) -> None:
        await apply_finding(self.bot, finding, self.settings.renotify, time.time() if now is None else now)


_WATCHES: "weakref.WeakKeyDictionary[Any, HealthWatch]" = weakref.WeakKeyDictionary()


def watch_of(bot: "Bot") -> HealthWatch:
    if bot not in _WATCHES:
        _WATCHES[bot] = HealthWatch(bot, bot.config.settings("health"), bot.config.settings("services"))
    return _WATCHES[bot]


def install(bot: "Bot") -> HealthWatch:
    """Startup: the failed-units and certificate checks, each first run a few seconds after start."""
    watch = watch_of(bot)
    s = watch.settings
    soon = datetime.now(timezone.utc) + timedelta(seconds=2)
    if s.failed_units_interval > 0 and not watch.systemd_running():
        log.info("failed_units_not_checked", reason=f"{s.systemd_dir} is missing: systemd does not run "
                                                    "this machine")
    elif s.failed_units_interval > 0:
        bot.scheduler.add_job(watch.check_units, "interval", seconds=s.failed_units_interval,
                              id="health-failed-units", name="failed units check",
                              replace_existing=True, next_run_time=soon)
    if s.tls_domains and s.tls_interval > 0:
        bot.scheduler.add_job(watch.check_tls, "interval", seconds=s.tls_interval,
                              id="health-tls", name="certificate check", replace_existing=True,
                              next_run_time=soon)
    return watch
