"""The health rules: what a failed unit and a certificate check mean as alerts (one per unit or domain
and condition)."""
from __future__ import annotations

import fnmatch

from spbot.system.services import FailedUnit
from spbot.system.tls import CertStatus

from ..findings import Finding
from .settings import HealthSettings, target_name

UNIT_PREFIX = "unit:"
TLS_PREFIX = "tls:"
INVALID_KINDS = ("hostname_mismatch", "verification", "handshake", "not_yet_valid")


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


def ignored(unit: str, patterns: list[str]) -> bool:
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
