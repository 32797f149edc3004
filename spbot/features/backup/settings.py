"""[backup] in the config: the repository, its password, the services and their paths, retention,
schedules and limits; validated when the config is read (one clear line per mistake)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from spbot.config import Duration, Secret, config_section
from spbot.scheduler import cron_trigger
from spbot.system.restic import RetentionPolicy
from spbot.system.services import normalize_unit

from .databases import Database


_SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def _absolute(path: Path) -> Path:
    if not path.is_absolute():
        raise ValueError("must be an absolute path")
    return path


def _service_name(name: str) -> str:
    if not _SERVICE_NAME.match(name):
        raise ValueError("service names are lower-case letters, digits, - and _ (at most 40)")
    return name


def _unit(name: str) -> str:
    return normalize_unit(name)


def _cron(expr: str) -> str:
    if expr.strip().lower() not in ("", "off"):
        cron_trigger(expr, "UTC")
    return expr.strip()


AbsPath = Annotated[Path, AfterValidator(_absolute)]
ServiceName = Annotated[str, AfterValidator(_service_name)]
UnitName = Annotated[str, AfterValidator(_unit)]
Cron = Annotated[str, AfterValidator(_cron)]
Argv = Annotated[list[str], Field(min_length=1)]


class ServiceSettings(BaseModel):
    """[backup.services.<name>]: what one snapshot holds, and what runs around it."""
    model_config = ConfigDict(extra="forbid")
    paths: list[AbsPath] = Field(min_length=1)
    excludes: list[str] = Field(default_factory=list)
    pre: list[Argv] = Field(default_factory=list)     # run in order before the snapshot (e.g. a DB dump)
    post: list[Argv] = Field(default_factory=list)    # run after it, even when it failed
    units: list[UnitName] = Field(default_factory=list)  # stopped while a restore moves data into place
    database: Database | None = None                  # dumped into the snapshot, imported back on restore


class LocalRepositorySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["local"] = "local"
    path: AbsPath | None = None  # default: <state_dir>/restic-repo


class S3RepositorySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["s3"]
    endpoint: str
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    prefix: str = ""
    region: str | None = None
    access_key_id: str
    secret_access_key: Secret

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError("endpoint must be http(s)://host[:port]")
        return value.rstrip("/")


class B2RepositorySettings(BaseModel):
    """Backblaze B2, used through its S3-compatible API (see restic.B2Repository). A repository that an
    older spbot made with restic's native b2: backend opens unchanged; `!backup setup b2` once more
    records the account's S3 endpoint (or set `endpoint` here)."""
    model_config = ConfigDict(extra="forbid")
    kind: Literal["b2"]
    bucket: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{6,50}$")]
    prefix: str = ""
    key_file: AbsPath | None = None  # written by `!backup setup b2`; default <state_dir>/b2-restic-key.json
    endpoint: str | None = None      # default: the S3 endpoint `!backup setup b2` stored with the key


class B2Settings(BaseModel):
    """[backup.b2]: the account key `!backup setup b2` uses to make the bucket and restic's own key."""
    model_config = ConfigDict(extra="forbid")
    master_key_id: str | None = None
    master_key: Secret | None = None
    keep_deleted_days: int = Field(30, ge=1)
    key_name: str = "spbot-restic"


def _local_by_default(value: Any) -> Any:
    return {"kind": "local", **value} if isinstance(value, dict) and "kind" not in value else value


RepositorySettings = Annotated[LocalRepositorySettings | S3RepositorySettings | B2RepositorySettings,
                               Field(discriminator="kind"), BeforeValidator(_local_by_default)]


@config_section("backup")
class BackupSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repository: RepositorySettings = Field(default_factory=LocalRepositorySettings)
    password: Secret | None = None  # default: <state_dir>/restic-password (created for a new local repository)
    services: dict[ServiceName, ServiceSettings] = Field(default_factory=dict)
    retention: RetentionPolicy = RetentionPolicy(keep_daily=7, keep_weekly=4, keep_monthly=6)
    keep_manual: int = Field(10, ge=1)        # the last N manual snapshots per service
    keep_pre_restore_days: int = Field(30, ge=1)  # pre-restore snapshots are kept this long
    same_disk_ok: bool = False                # the admin knows the repository is on this server
    schedule: Cron = "0 3 * * *"              # automatic backups; "off" disables
    misfire_grace: Duration = 3600.0
    retention_schedule: Cron = "30 4 * * *"
    drill_schedule: Cron = "0 5 * * 0"
    digest_schedule: Cron = "0 9 * * *"
    max_age: Duration = 26 * 3600.0           # watchdog: alert when a service's last success is older
    watchdog_interval: Duration = 600.0
    drill_files: int = Field(20, ge=1)
    drill_max_bytes: int = Field(256 << 20, ge=1)
    host: str | None = None                   # restic's --host; default: the machine's hostname
    restic: str = "restic"
    systemctl: str = "systemctl"
    cache_dir: AbsPath | None = None          # default: <state_dir>/restic-cache
    timeout: Duration = 6 * 3600.0            # one backup or restore
    command_timeout: Duration = 1800.0        # one pre/post command, or a systemctl call
    auto_init: bool = True                    # create the default local repository on first use
    progress_fps: float = Field(2.0, gt=0, le=60)
    b2: B2Settings = Field(default_factory=B2Settings)


def enabled(expr: str) -> bool:
    return expr.strip().lower() not in ("", "off")
