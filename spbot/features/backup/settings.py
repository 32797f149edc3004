"""[backup] in the config: the repository, its password, the services and their paths, retention,
schedules and limits; validated when the config is read (one clear line per mistake)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, field_validator

from spbot.config import Duration, Secret, config_section
from spbot.scheduler import cron_trigger
from spbot.system.restic import RetentionPolicy
from spbot.system.services import normalize_unit

from .databases import Database
from spbot.model import Model


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


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(KiB|MiB|GiB)\s*$")
_KIB = {"KiB": 1, "MiB": 1024, "GiB": 1024 * 1024}


def _rate(value: Any) -> int | None:
    """"50MiB" (per second) -> KiB per second; "off" -> None (a number is taken as KiB per second:
    what the validated settings hold)."""
    if value is None or isinstance(value, str) and value.strip().lower() == "off":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str) and (m := _RATE.match(value)):
        kib = int(float(m.group(1)) * _KIB[m.group(2)])
        if kib >= 1:
            return kib
    raise ValueError('expected a rate per second such as "50MiB", "800KiB" or "off"')


AbsPath = Annotated[Path, AfterValidator(_absolute)]
WriteRate = Annotated[int | None, BeforeValidator(_rate)]
ServiceName = Annotated[str, AfterValidator(_service_name)]
UnitName = Annotated[str, AfterValidator(_unit)]
Cron = Annotated[str, AfterValidator(_cron)]
Argv = Annotated[list[str], Field(min_length=1)]


class ServiceSettings(Model):
    """[backup.services.nextcloud]: what one service's snapshot holds, and what runs around it."""
    model_config = ConfigDict(extra="forbid")
    paths: list[AbsPath] = Field(
        min_length=1, examples=[["/var/lib/nextcloud", "/etc/nextcloud"]],
        description="The directories and files the snapshot holds (absolute paths).")
    excludes: list[str] = Field(
        default_factory=list, examples=[["/var/lib/nextcloud/cache", "*.tmp"]],
        description="What to leave out: restic exclude patterns, e.g. a cache directory or \"*.tmp\".")
    pre: list[Argv] = Field(
        default_factory=list, examples=[[["/usr/local/bin/nextcloud-maintenance", "on"]]],
        description="Commands run in order before the snapshot, each a list of words (e.g. a maintenance "
                    "mode); a failing one stops that service's backup.")
    post: list[Argv] = Field(
        default_factory=list, examples=[[["/usr/local/bin/nextcloud-maintenance", "off"]]],
        description="Commands run after the snapshot, even when it failed.")
    units: list[UnitName] = Field(
        default_factory=list, examples=[["nextcloud.service"]],
        description="The systemd units stopped while a restore puts this service's data back, started "
                    "again afterwards.")
    database: Database | None = Field(
        None,
        description="A database dumped into the snapshot before it is taken and imported back on restore.")


class LocalRepositorySettings(Model):
    """[backup.repository] kind = "local": a restic repository in a directory of this server (the
    default; a warning says it does not survive the loss of the disk unless same_disk_ok = true)."""
    model_config = ConfigDict(extra="forbid")
    kind: Literal["local"] = Field("local", description="local, s3 or b2: where the snapshots are kept.")
    path: AbsPath | None = Field(
        None, description="The repository's directory (unset: <state_dir>/restic-repo).")


class S3RepositorySettings(Model):
    """[backup.repository] kind = "s3": a bucket of any S3-compatible storage (AWS, MinIO, Wasabi, …)."""
    model_config = ConfigDict(extra="forbid")
    kind: Literal["s3"] = Field(examples=["s3"], description="s3: an S3-compatible bucket.")
    endpoint: str = Field(
        examples=["https://s3.eu-central-1.amazonaws.com"],
        description="The storage's URL, http(s)://host[:port].")
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")] = Field(
        examples=["family-backups"], description="The bucket's name (lower-case letters, digits, . and -).")
    prefix: str = Field("", description="A folder inside the bucket for the repository (empty: its root).")
    region: str | None = Field(
        None, description="The bucket's region, when the storage needs one (unset: none is sent).")
    access_key_id: str = Field(examples=["AKIAIOSFODNN7EXAMPLE"], description="The access key's id.")
    secret_access_key: Secret = Field(
        examples=[{"file": "/etc/spbot/s3-secret-key"}], description="The access key's secret.")

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError("endpoint must be http(s)://host[:port]")
        return value.rstrip("/")


class B2RepositorySettings(Model):
    """[backup.repository] kind = "b2": a Backblaze B2 bucket, used through its S3-compatible API;
    `!backup setup b2` makes the bucket and a key for it alone (see [backup.b2]).

    A repository that an older spbot made with restic's native b2: backend opens unchanged;
    `!backup setup b2` once more records the account's S3 endpoint (or set `endpoint` here)."""
    model_config = ConfigDict(extra="forbid")
    kind: Literal["b2"] = Field(examples=["b2"], description="b2: a Backblaze B2 bucket.")
    bucket: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{6,50}$")] = Field(
        examples=["family-server-backups"],
        description="The bucket's name (6 to 50 letters, digits and -; B2 names are unique across all "
                    "accounts).")
    prefix: str = Field("", description="A folder inside the bucket for the repository (empty: its root).")
    key_file: AbsPath | None = Field(
        None, description="Where `!backup setup b2` writes the bucket's own key (unset: "
                          "<state_dir>/b2-restic-key.json).")
    endpoint: str | None = Field(
        None, description="The account's S3 endpoint, e.g. https://s3.eu-central-003.backblazeb2.com "
                          "(unset: the one `!backup setup b2` stored with the key).")


class B2Settings(Model):
    """[backup.b2]: the account key `!backup setup b2` uses to make the bucket and restic's own key."""
    model_config = ConfigDict(extra="forbid")
    master_key_id: str | None = Field(
        None, examples=["0031234567890ab0000000001"],
        description="The id of a B2 application key that may create buckets and keys (only `!backup "
                    "setup b2` uses it).")
    master_key: Secret | None = Field(
        None, examples=[{"file": "/etc/spbot/b2-master-key"}], description="That application key.")
    keep_deleted_days: int = Field(
        30, ge=1, description="How many days the bucket keeps deleted and overwritten files (its "
                              "lifecycle rule), so a deleted snapshot can still be recovered.")
    key_name: str = Field("spbot-restic", description="The name of the key made for restic (it can use "
                                                       "only this bucket).")


def _local_by_default(value: Any) -> Any:
    return {"kind": "local", **value} if isinstance(value, dict) and "kind" not in value else value


RepositorySettings = Annotated[LocalRepositorySettings | S3RepositorySettings | B2RepositorySettings,
                               Field(discriminator="kind"), BeforeValidator(_local_by_default)]


@config_section("backup")
class BackupSettings(Model):
    """[backup]: restic backups of the services below, where they go, how long they are kept and when
    they run."""
    model_config = ConfigDict(extra="forbid")
    repository: RepositorySettings = Field(
        default_factory=LocalRepositorySettings,
        description="Where the snapshots are kept: kind = \"local\" (the default), \"s3\" or \"b2\".")
    password: Secret | None = Field(
        None, examples=[{"file": "/etc/spbot/restic-password"}],
        description="The repository's password; without it, nothing in the repository can be read back. "
                    "Unset: <state_dir>/restic-password (made for a new local repository).")
    services: dict[ServiceName, ServiceSettings] = Field(
        default_factory=dict,
        description="The services to back up, one table each; a name is lower-case letters, digits, - "
                    "and _.")
    retention: RetentionPolicy = Field(
        RetentionPolicy(keep_daily=7, keep_weekly=4, keep_monthly=6),
        description="How many automatic snapshots are kept, per restic's forget --keep-* rules (at least "
                    "one keep_* value).")
    keep_manual: int = Field(10, ge=1, description="How many manual (!backup) snapshots are kept per "
                                                   "service.")
    keep_pre_restore_days: int = Field(
        30, ge=1, description="Days the snapshot taken before each restore is kept.")
    same_disk_ok: bool = Field(
        False, description="A local repository on this server's own disk is what you want: no warning "
                           "that a lost disk loses the backups too.")
    schedule: Cron = Field("0 3 * * *", description="When the automatic backup runs (crontab line; "
                                                    "\"off\": never).")
    misfire_grace: Duration = Field(
        3600.0, description="A scheduled run missed (the bot was down) still runs once if it is no later "
                            "than this.")
    retention_schedule: Cron = Field(
        "30 4 * * *", description="When old snapshots are forgotten and pruned (crontab line; \"off\": "
                                  "never).")
    drill_schedule: Cron = Field(
        "0 5 * * 0", description="When the restore drill restores a sample of files and compares them "
                                 "(crontab line; \"off\": never).")
    digest_schedule: Cron = Field(
        "0 9 * * *", description="When the daily summary of the last 24 hours' backups is posted (crontab "
                                 "line; \"off\": never).")
    max_age: Duration = Field(
        26 * 3600.0, description="Alert when a service's last successful backup is older than this.")
    watchdog_interval: Duration = Field(
        600.0, description="How often the age of the last backups is checked.")
    drill_files: int = Field(20, ge=1, description="How many files the restore drill restores.")
    drill_max_bytes: int = Field(256 << 20, ge=1,
                                 description="The most bytes the restore drill restores (256 MiB).")
    host: str | None = Field(
        None, examples=["family-server"],
        description="The host name snapshots are recorded under (unset: this machine's hostname).")
    restic: str = Field("restic", description="The restic program.")
    systemctl: str = Field("systemctl", description="The systemctl program (stops and starts the "
                                                    "services' units around a restore).")
    cache_dir: AbsPath | None = Field(None, description="restic's cache (unset: <state_dir>/restic-cache).")
    timeout: Duration = Field(6 * 3600.0, description="How long one backup or restore may take.")
    command_timeout: Duration = Field(
        1800.0, description="How long one pre or post command, or one systemctl call, may take.")
    auto_init: bool = Field(
        True, description="Create the default local repository and its password on first use.")
    write_limit: WriteRate = Field(
        "50MiB", validate_default=True, examples=["50MiB", "off"],
        description="The most a backup or prune writes to the repository per second (restic's --limit-upload). "
                    "A disk busy with the backup's writes made every other program's writes wait: the bot's and "
                    "the homeserver's replies took 1.3x as long during a local backup, 1.1x with 50 MiB/s. "
                    "\"off\": as fast as the disk or the network goes.")
    progress_fps: float = Field(2.0, gt=0, le=60,
                                description="How many progress updates per second restic reports.")
    b2: B2Settings = Field(default_factory=B2Settings,
                           description="The Backblaze B2 account key `!backup setup b2` uses to make the bucket "
                                       "and a key for restic that can use only that bucket.")


def enabled(expr: str) -> bool:
    return expr.strip().lower() not in ("", "off")
