"""[services.<name>]: a catalogue service this server runs, and what differs here from the catalogue
(other paths, extra excludes, containers instead of units). The config stays explicit: a service is
watched, shown and backed up only when its table is there (`spbot services detect` proposes them).

    [services.nextcloud]                  # the catalogue's nextcloud as it is
    [services.photos]
    definition = "folder"                 # another catalogue entry under its own name
    data_paths = ["/srv/photos"]
    [services.synapse]
    containers = ["synapse"]              # runs in Docker: state, logs and restarts through docker
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError

from spbot.config import Duration
from spbot.features.backup.databases import Database

from .catalogue import definition
from .definition import AbsPath, Container, Definition, LocalUrl, Unit
from spbot.model import Model

NIXOS_MARKER = Path("/etc/NIXOS")


class ServiceConfig(Model):
    """[services.<name>]: one enabled service, with overrides of its catalogue definition."""
    model_config = ConfigDict(extra="forbid")
    definition: str | None = None              # the catalogue entry (default: the table's name)
    distro: Literal["debian", "nixos"] | None = None   # default: nixos where /etc/NIXOS exists
    units: list[Unit] | None = None            # replace the catalogue's units
    containers: list[Container] | None = None  # run in Docker (the catalogue's units are then dropped)
    compose_project: Container | None = None
    data_paths: list[AbsPath] | None = None    # replace the catalogue's data paths
    extra_paths: list[AbsPath] = Field(default_factory=list)
    excludes: list[str] = Field(default_factory=list)  # added to the catalogue's
    database: Database | None = None
    health_url: LocalUrl | None = None
    media_store: AbsPath | None = None         # a homeserver's media_store_path, if not the catalogue's
    backup: bool = True                        # back it up with !backup (as service:<name>)
    unhealthy_after: Duration = 300.0          # alert when its health check fails this long


def parse_tables(tables: dict[str, object]) -> dict[str, ServiceConfig]:
    """The [services.<name>] tables, each checked against the catalogue; ValueError in the admin's words."""
    enabled: dict[str, ServiceConfig] = {}
    for name, table in tables.items():
        try:
            config = ServiceConfig.model_validate(table)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"[services.{name}] {where}: {first['msg']}") from None
        try:
            resolve(name, config)
        except KeyError as exc:
            raise ValueError(f"[services.{name}]: no such service in the catalogue; {exc.args[0]}") from None
        except ValidationError as exc:
            raise ValueError(f"[services.{name}]: {exc.errors()[0]['msg']}") from None
        except ValueError as exc:
            raise ValueError(f"[services.{name}]: {exc}") from None
        enabled[name] = config
    return enabled


def resolve(name: str, config: ServiceConfig, nixos_marker: Path = NIXOS_MARKER) -> Definition:
    """The catalogue's definition for this server: its distro's variant, then the config's overrides."""
    base = definition(config.definition or name)
    distro = config.distro or ("nixos" if nixos_marker.exists() else "debian")
    data = base.for_distro(distro).model_dump()
    data["name"] = name
    if config.containers is not None or config.compose_project is not None:
        data.update(units=[], optional_units=[], log_units=None, stop_during_restore=None,
                    containers=config.containers or [], compose_project=config.compose_project)
    if config.units is not None:
        data.update(units=config.units, optional_units=[], log_units=None, stop_during_restore=None)
    if config.data_paths is not None:
        data["data_paths"] = config.data_paths
    data["data_paths"] = list(dict.fromkeys([*data["data_paths"], *config.extra_paths]))
    data["excludes"] = [*data["excludes"], *config.excludes]
    if config.database is not None:
        data["database"] = config.database.model_dump()
    if config.health_url is not None:
        data["health"] = {**data["health"], "url": config.health_url}
    if config.media_store is not None:
        data["media_store"] = config.media_store
    if data.get("media_store"):
        cache = [f"{data['media_store']}/{part}" for part in ("remote_content", "remote_thumbnail")]
        data["excludes"] = list(dict.fromkeys([*data["excludes"], *cache]))
    if base.generic and not data["data_paths"]:
        raise ValueError(f"{base.name} is a template: give its data_paths = [\"/srv/...\"]")
    data["generic"] = False
    return Definition.model_validate(data)
