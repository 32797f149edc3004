"""[services]: the units !services shows and !service restart may restart; [health]: the failed-units
and certificate checks. Also the unit name a command takes, checked against [services] when it is read."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from spbot.config import Duration, config_section
from spbot.system.services import ServicesParams, normalize_unit

from .enabled import ServiceConfig, parse_tables
from spbot.model import Model


@config_section("services")
class ServicesSettings(ServicesParams):
    """[services]: the units !services shows and !service restart may restart."""
    model_config = ConfigDict(extra="forbid")
    timeout: Duration = Field(15.0, description="How long one systemctl query may take.")
    restart_timeout: Duration = Field(120.0, description="How long !service restart may take.")
    check_interval: Duration = Field(60.0, description="How often the enabled services ([services.<name>]) "
                                                       "are checked for alerts; 0: never.")
    root: Path = Field(Path("/"), description="The machine's root, where !services detect looks for unit files "
                                              "and data (another directory only for tests).")
    # [services.<name>] tables: the catalogue services this server runs (spbot/features/services/enabled.py)
    _enabled: dict[str, ServiceConfig] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _service_tables(cls, data, handler):
        tables = {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}
        settings = handler({k: v for k, v in data.items() if k not in tables} if tables else data)
        settings._enabled = parse_tables(tables)
        return settings

    @property
    def enabled(self) -> dict[str, ServiceConfig]:
        """The [services.<name>] tables, by name."""
        return self._enabled


@config_section("health")
class HealthSettings(Model):
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


class UnitName(str):
    """A unit name checked when the command is read, so a bad or unlisted unit is refused before
    anyone is asked to approve it (the services feature sets `configured` when it starts)."""
    configured: ClassVar[ServicesParams | None] = None

    @classmethod
    def parse_arg(cls, word: str) -> "UnitName":
        params = cls.configured
        return cls(params.allowed(word) if params is not None else normalize_unit(word))


class ServiceTarget(str):
    """What !service restart|stop|start|logs acts on: an enabled catalogue service ([services.<name>]) or,
    as before, a configured unit (checked like UnitName). The feature sets `enabled` when it starts."""
    enabled: ClassVar[frozenset[str]] = frozenset()
    is_service: bool = False

    @classmethod
    def parse_arg(cls, word: str) -> "ServiceTarget":
        if word.strip() in cls.enabled:
            target = cls(word.strip())
            target.is_service = True
            return target
        return cls(UnitName.parse_arg(word))


class EnabledName(str):
    """An enabled catalogue service's name ([services.<name>]), checked when the command is read."""
    enabled: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def parse_arg(cls, word: str) -> "EnabledName":
        name = word.strip()
        if name not in cls.enabled:
            known = ", ".join(sorted(cls.enabled)) or "none: enable them in [services.<name>] (see !services detect)"
            raise ValueError(f"{name!r} is not an enabled service; enabled: {known}")
        return cls(name)
