"""A service definition of the catalogue (spbot/features/services/catalogue/<name>.toml): what a family
service is made of on a server — its systemd units or containers, its data, its database and how to dump
it, what stops during a restore, how to tell it is healthy, where its logs are — and the per-distro
differences (`[variants.nixos]` replaces the keys it names).

    description = "Nextcloud: files, calendars and contacts"
    units = ["phpfpm-nextcloud.service"]
    data_paths = ["/var/lib/nextcloud"]
    [database]
    kind = "postgresql"
    name = "nextcloud"
    user = "postgres"
    [health]
    url = "http://127.0.0.1/status.php"
    expect_text = "\"installed\":true"
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from spbot.features.backup.databases import Database
from spbot.system.services import normalize_unit
from spbot.model import Model

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_CONTAINER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
DISTROS = ("debian", "nixos")


def _absolute(path: Path) -> Path:
    if not path.is_absolute():
        raise ValueError(f"{path}: must be an absolute path")
    return path


def _container(name: str) -> str:
    if not _CONTAINER.match(name):
        raise ValueError(f"{name!r} is not a container or compose project name")
    return name


def _local_url(url: str) -> str:
    if not re.match(r"^https?://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/\S*)?$", url):
        raise ValueError("the health check URL must be on this machine (http://127.0.0.1:PORT/...)")
    return url


AbsPath = Annotated[Path, AfterValidator(_absolute)]
Unit = Annotated[str, AfterValidator(normalize_unit)]
Container = Annotated[str, AfterValidator(_container)]
LocalUrl = Annotated[str, AfterValidator(_local_url)]


class HealthCheck(Model):
    """Healthy: every unit active (every container running) and, where cheap, a local HTTP answer."""
    model_config = ConfigDict(extra="forbid")
    url: LocalUrl | None = None
    expect_status: int = Field(200, ge=100, le=599)
    expect_text: str | None = None       # a piece of text the answer must contain
    timeout: float = Field(5.0, gt=0, le=60)


class Variant(Model):
    """[variants.<distro>]: the keys that differ on that distribution (NixOS names its units otherwise)."""
    model_config = ConfigDict(extra="forbid")
    units: list[Unit] | None = None
    optional_units: list[Unit] | None = None
    data_paths: list[AbsPath] | None = None
    database: Database | None = None
    log_units: list[Unit] | None = None
    health: HealthCheck | None = None
    media_store: AbsPath | None = None


class Definition(Model):
    """One service of the catalogue."""
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME.pattern)
    description: str = Field(min_length=3, max_length=120)
    units: list[Unit] = Field(default_factory=list)            # all must exist and run
    optional_units: list[Unit] = Field(default_factory=list)   # shown and checked when they exist
    containers: list[Container] = Field(default_factory=list)  # Docker containers by name
    compose_project: Container | None = None                   # or every container of a compose project
    data_paths: list[AbsPath] = Field(default_factory=list)
    excludes: list[str] = Field(default_factory=list)
    database: Database | None = None
    stop_during_restore: list[Unit] | None = None              # default: the units
    health: HealthCheck = Field(default_factory=HealthCheck)
    log_units: list[Unit] | None = None                        # default: the units and optional units
    nixos_option: str | None = Field(None, pattern=r"^[A-Za-z0-9_.\-\"]+$")  # e.g. services.gitea.enable
    variants: dict[str, Variant] = Field(default_factory=dict)
    generic: bool = False           # a template (e.g. "folder") that detection never proposes
    media_store: AbsPath | None = None  # a Matrix homeserver's media_store_path: measured, its cache purged

    @model_validator(mode="after")
    def _made_of_something(self) -> "Definition":
        unknown = sorted(set(self.variants) - set(DISTROS))
        if unknown:
            raise ValueError(f"unknown distribution(s) {', '.join(unknown)}: variants are {', '.join(DISTROS)}")
        if not self.generic and not (self.units or self.containers or self.compose_project or self.data_paths):
            raise ValueError("a service needs units, containers, a compose_project or data_paths")
        return self

    def for_distro(self, distro: str | None) -> "Definition":
        """This definition with the variant of `distro` applied (itself when there is none)."""
        variant = self.variants.get(distro or "")
        if variant is None:
            return self
        changed = {k: v for k, v in variant.model_dump(exclude_none=True).items()}
        return self.model_validate({**self.model_dump(), **changed, "variants": {}})

    @property
    def all_units(self) -> list[str]:
        return list(dict.fromkeys(self.units + self.optional_units))

    @property
    def journal_units(self) -> list[str]:
        return self.log_units if self.log_units is not None else self.all_units

    @property
    def restore_stops(self) -> list[str]:
        return self.stop_during_restore if self.stop_during_restore is not None else self.units

    @property
    def in_containers(self) -> bool:
        return bool(self.containers or self.compose_project)
