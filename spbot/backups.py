"""Backups of the server's services with restic (issue 6).

Each configured service is backed up as its own snapshot, tagged `service:<name>` and
`reason:manual|auto|pre-restore`. Around that: live progress, one row per finished run in the bot's
database, retention of automatic snapshots, a watchdog, a daily digest, a restore drill, and restores
that verify the restored data before anything live is replaced.

    backups = Backups(settings, state_dir, store)
    outcomes = await backups.run(["nextcloud"], reason="manual", progress=show)
    report = await backups.restore_into_place("1a2b3c4d", "nextcloud", progress=show)

The chat surface is commands/backup.py; `install(bot)` adds the scheduled work. The repository
password stays in a 0600 file: restic gets it through the adapter's private temporary file, never
through argv, chat or logs.
"""
from __future__ import annotations

import asyncio
import filecmp
import json
import os
import random
import re
import secrets
import shutil
import stat
import tempfile
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator

from spbot.providers.b2 import B2Error, B2Provider, BucketUsage
from spbot.config import ConfigError, Duration, Secret, config_section
from spbot.context import UserError
from spbot.logs import get_logger
from spbot.render import Reply, human_bytes, human_duration, table
from spbot.scheduler import cron_trigger
from spbot.system.proc import ProcError, run
from spbot.system.restic import (B2Repository, BackupStatus, BackupSummary, ForgetGroup, ForgetResult, Listing,
                                 LocalRepository, Node, Repository, Restic, ResticError, ResticFailure,
                                 RetentionPolicy, S3Repository, Snapshot, scrub, verify_restored)
from spbot.system.services import normalize_unit

if TYPE_CHECKING:
    from spbot.bot import Bot
    from spbot.store import Store

log = get_logger(__name__)

REASONS = ("manual", "auto", "pre-restore")
Progress = Callable[[str, "float | None"], Awaitable[None]]

# --------------------------------------------------------------------------- settings

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


# --------------------------------------------------------------------------- outcomes

# Failures that concern the repository, not one service: the other services are not attempted.
REPOSITORY_FAILURES = {ResticFailure.WRONG_PASSWORD, ResticFailure.NO_REPOSITORY, ResticFailure.LOCKED,
                       ResticFailure.UNREACHABLE, ResticFailure.NO_SPACE, ResticFailure.TIMEOUT,
                       ResticFailure.NOT_INSTALLED, ResticFailure.DAMAGED}


@dataclass
class Outcome:
    """One service's backup: a snapshot, or what went wrong and what to do."""
    service: str
    reason: str
    started: float = field(default_factory=time.time)
    ended: float = 0.0
    summary: BackupSummary | None = None
    error: str = ""
    todo: str = ""
    kind: ResticFailure | None = None
    skipped: bool = False
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.summary is not None and bool(self.summary.snapshot_id) and not self.error

    @property
    def snapshot_id(self) -> str:
        return (self.summary.snapshot_id or "")[:8] if self.summary else ""

    @property
    def repository_failed(self) -> bool:
        return self.kind in REPOSITORY_FAILURES

    def fail(self, error: str, todo: str, kind: ResticFailure | None = None) -> None:
        self.error, self.todo, self.kind = error, todo, kind

    def line(self) -> str:
        """One short message for the family admin's phone."""
        took = human_duration(max(self.ended - self.started, 0))
        if self.skipped:
            return f"⏭ {self.service}: not attempted — {self.error}"
        if not self.ok:
            return f"❌ {self.service}: backup failed after {took}.\n{self.error}\nWhat to do: {self.todo}"
        s = self.summary
        text = (f"✅ {self.service}: snapshot {self.snapshot_id} · {s.files_new:,} new, "
                f"{s.files_changed:,} changed files · {human_bytes(s.data_added)} added · {took}")
        text += f"\n   ({s.total_files_processed:,} files, {human_bytes(s.total_bytes_processed)} in the snapshot)"
        extra = self.notes + [f"⚠️ {w}" for w in self.warnings[:5]]
        return text + "".join(f"\n   {x}" for x in extra)


def advice(kind: ResticFailure | None, backups: "Backups | None" = None) -> str:
    """What to do next, per kind of restic failure."""
    password = str(backups.password_path()) if backups and backups.password_path() else "the password file"
    return {
        ResticFailure.WRONG_PASSWORD: f"check that {password} holds this repository's password "
                                      "(the one it was created with); nothing was backed up",
        ResticFailure.NO_REPOSITORY: "create it with !backup setup init, or check the repository "
                                     "location in [backup.repository]",
        ResticFailure.LOCKED: "another restic process is using the repository; wait for it (see !jobs) "
                              "and run !backup now again",
        ResticFailure.UNREACHABLE: "check the server's network and the repository endpoint, then run "
                                   "!backup now again",
        ResticFailure.NO_SPACE: "free disk space (see !disk) where the repository or restic's cache "
                                "lives, then run !backup now again",
        ResticFailure.TIMEOUT: "the storage was too slow; try again later, or raise [backup] timeout",
        ResticFailure.KILLED: "restic was stopped (out of memory, or by someone); run !backup now "
                              "again — a stale lock is removed automatically",
        ResticFailure.INTERRUPTED: "restic was interrupted (the bot or the server was stopping); run "
                                   "!backup now again — a stale lock is removed automatically",
        ResticFailure.NOT_INSTALLED: "install restic on the server (apt-get install restic)",
        ResticFailure.DAMAGED: "the repository has errors: run `restic check` by hand and ask for help "
                               "before backing up again",
    }.get(kind, "read the message above, fix the cause and run !backup now again")


def _restic_user_error(exc: ResticError, backups: "Backups | None" = None) -> UserError:
    return UserError(str(exc), advice(exc.kind, backups))


# --------------------------------------------------------------------------- the run log

SCHEMA = """
CREATE TABLE IF NOT EXISTS backup_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    reason TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL NOT NULL,
    ok INTEGER NOT NULL,
    snapshot_id TEXT,
    files_new INTEGER NOT NULL DEFAULT 0,
    files_changed INTEGER NOT NULL DEFAULT 0,
    data_added INTEGER NOT NULL DEFAULT 0,
    total_files INTEGER NOT NULL DEFAULT 0,
    total_bytes INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS backup_runs_by_service ON backup_runs(service, ok, ended);
CREATE TABLE IF NOT EXISTS backup_sizes (snapshot_id TEXT PRIMARY KEY, size INTEGER NOT NULL);
"""


class RunLog:
    """Finished runs only: a run is written once, whole, when it ends (never half a run)."""

    def __init__(self, store: "Store"):
        self.store = store
        self._ready = False

    async def start(self) -> None:
        if not self._ready:
            await self.store.ensure_schema(SCHEMA)
            self._ready = True

    async def record(self, o: Outcome) -> None:
        await self.start()
        s = o.summary or BackupSummary()
        await self.store.insert(
            "INSERT INTO backup_runs(service, reason, started, ended, ok, snapshot_id, files_new, "
            "files_changed, data_added, total_files, total_bytes, error) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
            (o.service, o.reason, o.started, o.ended, int(o.ok), s.snapshot_id if o.ok else None,
             s.files_new, s.files_changed, s.data_added, s.total_files_processed, s.total_bytes_processed,
             o.error[:2000] or None))

    async def last_success(self, service: str):
        await self.start()
        return await self.store.fetchone(
            "SELECT * FROM backup_runs WHERE service = ? AND ok = 1 ORDER BY ended DESC LIMIT 1", (service,))

    async def since(self, when: float) -> list:
        await self.start()
        return await self.store.fetchall(
            "SELECT * FROM backup_runs WHERE ended >= ? ORDER BY ended", (when,))

    async def sizes(self) -> dict[str, int]:
        await self.start()
        known = {r["snapshot_id"][:8]: r["total_bytes"] for r in await self.store.fetchall(
            "SELECT snapshot_id, total_bytes FROM backup_runs WHERE ok = 1 AND snapshot_id IS NOT NULL")}
        for row in await self.store.fetchall("SELECT snapshot_id, size FROM backup_sizes"):
            known[row["snapshot_id"]] = row["size"]
        return known

    async def remember_size(self, short_id: str, size: int) -> None:
        await self.store.execute("INSERT OR REPLACE INTO backup_sizes(snapshot_id, size) VALUES(?, ?)",
                                 (short_id, size))

    # restic runs as its own process group: a killed bot or a killed restic leaves its lock behind.
    # The marker says a run did not end cleanly, so the next run removes stale locks first.
    async def mark_running(self) -> None:
        await self.store.put("backup:restic_running", time.time())

    async def mark_finished(self) -> None:
        await self.store.execute("DELETE FROM kv WHERE key = ?", ("backup:restic_running",))

    async def interrupted(self) -> bool:
        return await self.store.get("backup:restic_running") is not None

    async def first_seen(self, service: str, now: float) -> float:
        """When the watchdog first knew of this service (its grace period starts there)."""
        seen = await self.store.get("backup:first_seen", {})
        if service not in seen:
            seen[service] = now
            await self.store.put("backup:first_seen", seen)
        return seen[service]


# --------------------------------------------------------------------------- results of other operations


@dataclass
class RestoredPath:
    live: str          # the path as backed up
    copy: str          # where the restored copy ended up
    files: int
    size: int


@dataclass
class RestoreReport:
    snapshot: Snapshot
    service: str
    into_place: bool
    paths: list[RestoredPath] = field(default_factory=list)
    pre_restore: str = ""   # short id of the snapshot of the data that was replaced
    units: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class DrillResult:
    service: str
    snapshot: Snapshot | None = None
    files: int = 0           # files in the snapshot
    comparable: int = 0      # live files unchanged since the snapshot (same size and mtime)
    checked: int = 0
    mismatches: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and not self.mismatches


@dataclass
class RetentionReport:
    """What one retention pass kept and removed, per reason."""
    auto: ForgetResult
    manual: ForgetResult
    pre_restore: ForgetResult
    keep_manual: int
    keep_pre_restore_days: int

    @property
    def kept(self) -> list[Snapshot]:
        return self.auto.kept + self.manual.kept + self.pre_restore.kept

    @property
    def removed(self) -> list[Snapshot]:
        return self.auto.removed + self.manual.removed + self.pre_restore.removed


@dataclass
class StatsReport:
    location: str
    snapshots: int
    stored_size: int
    restore_size: int
    dedup_ratio: float
    last: dict[str, Any]                      # service -> row of its last success, or None
    b2_usage: BucketUsage | None = None
    b2_error: str = ""
    keep_deleted_days: int | None = None
    warning: str | None = None   # the repository is on this server / disk


@dataclass
class B2Setup:
    bucket: str
    created: bool
    keep_deleted_days: int
    key_name: str
    key_id: str
    capabilities: list[str]
    key_file: Path


# --------------------------------------------------------------------------- the core


class Backups:
    """Backups of the configured services into one restic repository. No chat, no alerts here."""

    def __init__(self, settings: BackupSettings, state_dir: Path, store: "Store | None", *,
                 b2_provider: Callable[[str, str | SecretStr], B2Provider] | None = None):
        self.settings = settings
        self.state_dir = Path(state_dir)
        self.log = RunLog(store)
        self.secrets: list[str] = []   # what no message may show: the password and repository keys
        self.b2_provider = b2_provider or (lambda key_id, key: B2Provider(key_id, key))

    # ---- repository and password

    def password_path(self) -> Path | None:
        secret = self.settings.password
        if secret is None:
            return self.state_dir / "restic-password"
        return secret.file

    def repository(self) -> Repository:
        repo = self.settings.repository
        if isinstance(repo, LocalRepositorySettings):
            return LocalRepository(path=repo.path or self.state_dir / "restic-repo")
        if isinstance(repo, S3RepositorySettings):
            return S3Repository(endpoint=repo.endpoint, bucket=repo.bucket, prefix=repo.prefix,
                                region=repo.region, access_key_id=repo.access_key_id,
                                secret_access_key=_read_secret(repo.secret_access_key, "S3 secret key"))
        key = self._b2_key()
        endpoint = repo.endpoint or key.get("s3_endpoint")
        if not endpoint:
            raise UserError("the B2 key was made before spbot used B2's S3-compatible API, so its S3 endpoint is "
                            "not known (the repository itself stays as it is)",
                            "run !backup setup b2 once more, or set endpoint = \"https://s3.<region>.backblazeb2.com\" "
                            "under [backup.repository]")
        return B2Repository(bucket=repo.bucket, prefix=repo.prefix, key_id=key["key_id"], key=key["key"],
                            endpoint=endpoint)

    def b2_key_file(self) -> Path:
        repo = self.settings.repository
        if isinstance(repo, B2RepositorySettings) and repo.key_file is not None:
            return repo.key_file
        return self.state_dir / "b2-restic-key.json"

    def _b2_key(self) -> dict[str, str]:
        path = self.b2_key_file()
        try:
            key = json.loads(path.read_text())
            return {"key_id": str(key["key_id"]), "key": str(key["key"]),
                    "s3_endpoint": str(key.get("s3_endpoint") or "")}
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"the Backblaze B2 key for restic is missing or unreadable ({path})",
                            "run !backup setup b2 to create it") from None

    def read_password(self, *, create: bool = False) -> str:
        secret = self.settings.password
        if secret is not None and secret.env is not None:
            return _read_secret(secret, "repository password")
        path = self.password_path()
        if create and not path.exists():
            write_private(path, secrets.token_urlsafe(32) + "\n")
            log.warning("backup_password_created", path=str(path))
        try:
            password = path.read_text().splitlines()[0].strip()
        except (OSError, IndexError):
            raise UserError(f"the repository password file {path} is missing or empty",
                            "run !backup setup init to create a new repository and its password, or put "
                            "the existing password in that file (mode 0600)") from None
        if not password:
            raise UserError(f"the repository password file {path} is empty", "put the password in it")
        return password

    def restic(self, *, create_password: bool = False) -> Restic:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        repository, password = self.repository(), self.read_password(create=create_password)
        self.secrets = [password, *repository.secrets()]
        return Restic(repository, password, binary=self.settings.restic, cache_dir=self.settings.cache_dir or self.state_dir / "restic-cache",
                      progress_fps=self.settings.progress_fps)

    def _is_new_default_repository(self) -> bool:
        """The embedded default: a local repository that does not exist yet, password not configured."""
        repo = self.repository() if isinstance(self.settings.repository, LocalRepositorySettings) else None
        return (self.settings.auto_init and repo is not None and self.settings.password is None
                and not (repo.path / "config").exists())

    async def init(self) -> str:
        """Create the repository (and its password file if there is none); a sentence saying what happened."""
        password_file = self.password_path()
        created_password = password_file is not None and not password_file.exists()
        restic = self.restic(create_password=True)
        try:
            created = await restic.init(timeout=300)
        except ResticError as exc:
            raise _restic_user_error(exc, self) from None
        warning = self.same_disk_warning()
        if not created:
            text = f"the repository at {_safe_location(restic)} already exists and the password opens it"
            return text + (f"\n{warning}" if warning else "")
        text = f"created a new restic repository at {_safe_location(restic)}"
        if created_password:
            text += (f"; its password is in {self.password_path()} — keep a copy of that file somewhere off "
                     "this server: without it the backups cannot be read")
        return text + (f"\n{warning}" if warning else "")

    # ---- services

    def select(self, names: Sequence[str]) -> list[tuple[str, ServiceSettings]]:
        services = self.settings.services
        if not services:
            raise UserError("no services are configured for backups",
                            "add [backup.services.NAME] with paths = [\"/srv/...\"] to the config and restart the bot")
        unknown = [n for n in names if n not in services]
        if unknown:
            raise UserError(f"unknown service {', '.join(unknown)}",
                            f"configured services: {', '.join(sorted(services))}")
        chosen = list(dict.fromkeys(names)) or sorted(services)
        return [(n, services[n]) for n in chosen]

    # ---- backing up

    async def run(self, names: Sequence[str] = (), reason: str = "manual", progress: Progress | None = None,
                  on_outcome: Callable[[Outcome], Awaitable[None]] | None = None) -> list[Outcome]:
        """Back up the named services (default: all), one snapshot each; every finished run is logged
        (and handed to `on_outcome`). A failure of the repository itself stops the run: the remaining
        services are reported as skipped."""
        if reason not in REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        services = self.select(names)
        restic = self.restic(create_password=self._is_new_default_repository())
        notes = await self._remove_stale_locks(restic)
        outcomes: list[Outcome] = []
        for index, (name, spec) in enumerate(services, 1):
            outcome = await self.backup_service(restic, name, spec, reason, progress, index, len(services))
            outcome.notes[:0] = notes  # said once, with the first service
            notes = []
            await self.log.record(outcome)
            outcomes.append(outcome)
            if on_outcome is not None:
                await on_outcome(outcome)
            if not outcome.ok and outcome.repository_failed:
                for other, _ in services[index:]:
                    skipped = Outcome(other, reason, skipped=True, ended=time.time(), kind=outcome.kind,
                                      error=f"the repository failed while backing up {name}")
                    outcomes.append(skipped)
                break
        return outcomes

    async def _remove_stale_locks(self, restic: Restic) -> list[str]:
        if not await self.log.interrupted():
            return []
        try:
            await restic.unlock()
        except ResticError as exc:
            log.warning("backup_unlock_failed", kind=str(exc.kind))
            return []
        await self.log.mark_finished()
        return ["removed stale locks left by an interrupted restic run"]

    async def backup_service(self, restic: Restic, name: str, spec: ServiceSettings, reason: str,
                             progress: Progress | None = None, index: int = 1, count: int = 1,
                             paths: Sequence[Path] | None = None) -> Outcome:
        outcome = Outcome(name, reason)
        label = f"{name} ({index}/{count})" if count > 1 else name
        try:
            if await self._commands("pre", label, spec.pre, outcome, progress):
                await self._snapshot(restic, name, spec, reason, label, progress, outcome, paths)
        finally:
            # Even when cancelled: a post command may restart what a pre command stopped.
            await self._commands("post", label, spec.post, outcome, progress)
            outcome.ended = time.time()
        log.info("backup_done", service=name, reason=reason, ok=outcome.ok, snapshot=outcome.snapshot_id,
                 kind=str(outcome.kind or ""), seconds=round(outcome.ended - outcome.started, 1))
        return outcome

    async def _snapshot(self, restic: Restic, name: str, spec: ServiceSettings, reason: str, label: str,
                        progress: Progress | None, outcome: Outcome, paths: Sequence[Path] | None) -> None:
        async def on_status(status: BackupStatus) -> None:
            if progress is not None:
                await progress(status_line(label, status), status.percent_done)

        def on_unlock(_: ResticError) -> None:
            outcome.notes.append("removed a stale lock left by an interrupted restic run")

        async def backup() -> BackupSummary:
            return await restic.backup_with_stale_lock_recovery(
                paths or spec.paths, tags=[f"service:{name}", f"reason:{reason}"], excludes=spec.excludes,
                host=self.settings.host, progress=on_status, timeout=self.settings.timeout,
                on_unlock=on_unlock)

        if progress is not None:
            await progress(f"{label}: starting restic", None)
        await self.log.mark_running()
        try:
            try:
                summary = await backup()
            except ResticError as exc:
                if exc.kind is not ResticFailure.NO_REPOSITORY or not self._is_new_default_repository():
                    raise
                await restic.init(timeout=300)
                outcome.notes.append(f"created the repository at {_safe_location(restic)}; its password is in "
                                     f"{self.password_path()} — keep a copy of that file off this server")
                summary = await backup()
        except ResticError as exc:
            outcome.fail(str(exc), advice(exc.kind, self), exc.kind)
            if exc.kind not in (ResticFailure.KILLED, ResticFailure.TIMEOUT):
                await self.log.mark_finished()
            return
        await self.log.mark_finished()
        outcome.summary = summary
        if summary.incomplete:
            outcome.warnings.append("some files could not be read; the snapshot lacks them")
        outcome.warnings += summary.warnings[:10]

    async def _commands(self, stage: str, label: str, commands: list[list[str]], outcome: Outcome,
                        progress: Progress | None) -> bool:
        """Run pre or post commands in order; a failed pre command stops the backup of that service."""
        for number, argv in enumerate(commands, 1):
            what = f"{stage} command {number} ({Path(argv[0]).name})"
            if progress is not None:
                await progress(f"{label}: {what}", None)
            try:
                result = await run(argv, timeout=self.settings.command_timeout, label=what)
            except ProcError as exc:
                problem = str(exc)
            else:
                if result.ok:
                    continue
                problem = (f"timed out after {result.duration:.0f} s" if result.timed_out
                           else f"exit {result.returncode}") + (f": {result.tail(3)}" if result.tail(3) else "")
            problem = scrub(problem, self.secrets)
            if stage == "pre":
                outcome.fail(f"the {what} failed, so no snapshot was made: {problem}",
                             f"fix the command in [backup.services.{outcome.service}] pre, or run it by hand "
                             "to see why; then run !backup now again")
                return False
            outcome.warnings.append(f"the {what} failed: {problem}")
        return True

    # ---- reading the repository

    async def snapshots(self, service: str | None = None, restic: Restic | None = None) -> list[Snapshot]:
        restic = restic or self.restic()
        try:
            return await restic.snapshots(tags=[f"service:{service}"] if service else ())
        except ResticError as exc:
            raise _restic_user_error(exc, self) from None

    async def find_snapshot(self, ref: str, service: str | None, restic: Restic) -> tuple[Snapshot, str]:
        """A snapshot by id prefix (or `latest` of a service) and the service it belongs to."""
        ref = ref.strip().lower()
        if ref == "latest" and not service:
            raise UserError("`latest` needs a service name", "e.g. !backup restore latest nextcloud (or --to DIR for every service)")
        if ref != "latest" and not re.fullmatch(r"[0-9a-f]{4,64}", ref):
            raise UserError(f"{ref!r} is not a snapshot id", "copy one from !backup list")
        found = await self.snapshots(service if ref == "latest" else None, restic)
        matches = found[-1:] if ref == "latest" else [s for s in found if s.id.startswith(ref)]
        if not matches:
            where = f" of {service}" if service else ""
            raise UserError(f"no snapshot{where} matches {ref}", "see !backup list for the snapshots")
        if len(matches) > 1:
            raise UserError(f"{ref} matches {len(matches)} snapshots", "give more characters of the id")
        snapshot = matches[0]
        owner = service_of(snapshot)
        if owner is None:
            raise UserError(f"snapshot {snapshot.short_id} has no service:<name> tag; spbot did not make it",
                            "restore it by hand with restic")
        if service and owner != service:
            raise UserError(f"snapshot {snapshot.short_id} belongs to {owner}, not {service}",
                            f"use !backup restore {snapshot.short_id} {owner}")
        return snapshot, owner

    async def snapshot_sizes(self, snapshots: Sequence[Snapshot], restic: Restic, limit: int = 10) -> dict[str, int]:
        """Sizes from the run log; a few unknown ones are asked from restic and remembered."""
        sizes = await self.log.sizes()
        for snapshot in [s for s in snapshots if s.short_id not in sizes][-limit:]:
            try:
                stats = await restic.stats("restore-size", snapshot_ids=[snapshot.id], timeout=300)
            except ResticError:
                continue
            sizes[snapshot.short_id] = stats.total_size
            await self.log.remember_size(snapshot.short_id, stats.total_size)
        return sizes

    async def stats(self) -> StatsReport:
        restic = self.restic()
        try:
            snapshots = await restic.snapshots()
            dedup = await restic.dedup_report()
        except ResticError as exc:
            raise _restic_user_error(exc, self) from None
        last = {name: await self.log.last_success(name) for name in sorted(self.settings.services)}
        report = StatsReport(location=_safe_location(restic), snapshots=len(snapshots),
                             stored_size=dedup.stored_size, restore_size=dedup.restore_size,
                             dedup_ratio=dedup.ratio, last=last, warning=self.same_disk_warning())
        if isinstance(self.settings.repository, B2RepositorySettings):
            report.keep_deleted_days = self.settings.b2.keep_deleted_days
            try:
                key = self._b2_key()
                report.b2_usage = await self.b2_provider(key["key_id"], key["key"]).usage(
                    self.settings.repository.bucket)
            except (B2Error, UserError) as exc:
                report.b2_error = getattr(exc, "what", str(exc))
        return report

    # ---- retention

    async def forget(self, *, dry_run: bool = False) -> "RetentionReport":
        """Retention per service (host and tags): the quotas for automatic snapshots, the last
        `keep_manual` manual ones, pre-restore ones for `keep_pre_restore_days`. Unused data is
        pruned once, at the end."""
        restic = self.restic()
        manual_policy = RetentionPolicy(keep_last=self.settings.keep_manual)

        async def apply() -> RetentionReport:
            old = await self._old_pre_restore(restic)
            if not dry_run:
                await restic.forget_snapshots([s.id for s in old], prune=False)
            manual = await restic.forget(manual_policy, tags=["reason:manual"], group_by=("host", "tags"),
                                         prune=False, dry_run=dry_run)
            auto = await restic.forget(self.settings.retention, tags=["reason:auto"],
                                       group_by=("host", "tags"), dry_run=dry_run)
            kept = [s for s in await restic.snapshots(tags=["reason:pre-restore"]) if s not in old] \
                if not dry_run else []
            pre = ForgetResult(groups=[ForgetGroup(keep=kept, remove=old)], pruned=auto.pruned)
            return RetentionReport(auto=auto, manual=manual, pre_restore=pre,
                                   keep_manual=self.settings.keep_manual,
                                   keep_pre_restore_days=self.settings.keep_pre_restore_days)
        try:
            return await restic.with_stale_lock_recovery(apply)
        except ResticError as exc:
            raise _restic_user_error(exc, self) from None

    async def _old_pre_restore(self, restic: Restic) -> list[Snapshot]:
        cutoff = time.time() - self.settings.keep_pre_restore_days * 86400
        return [s for s in await restic.snapshots(tags=["reason:pre-restore"]) if s.time.timestamp() < cutoff]

    async def forget_snapshot(self, ref: str) -> tuple[Snapshot, str]:
        """Remove one snapshot (any reason) and prune the data only it used; returns it and its service."""
        restic = self.restic()
        snapshot, name = await self.find_snapshot(ref, None, restic)
        try:
            await restic.with_stale_lock_recovery(lambda: restic.forget_snapshots([snapshot.id]))
        except ResticError as exc:
            raise _restic_user_error(exc, self) from None
        return snapshot, name

    # ---- where the repository is

    def same_disk_warning(self) -> str | None:
        """A sentence when the repository is a folder on this server (worse: on the same disk as the
        data), unless the admin said so in the config ([backup] same_disk_ok = true)."""
        repo = self.settings.repository
        if not isinstance(repo, LocalRepositorySettings) or self.settings.same_disk_ok:
            return None
        path = repo.path or self.state_dir / "restic-repo"
        data = [p for spec in self.settings.services.values() for p in spec.paths]
        where = ("on the same disk as the data it protects" if any(_same_device(path, p) for p in data)
                 else "on this server")
        return (f"⚠️ The backups are in {path}, {where}: a failed disk, a deleted server or ransomware takes "
                "the data and its backups together. Set up an off-site copy (!backup setup b2 for Backblaze "
                "B2, or an S3 repository), or write same_disk_ok = true under [backup] if that is what you "
                "want.")

    # ---- restore

    async def restore_into_place(self, ref: str, service: str | None,
                                 progress: Progress | None = None) -> RestoreReport:
        """Restore to a temporary directory next to the live data, verify, snapshot the current data
        (reason pre-restore), stop the service's units, swap the restored data in, start the units."""
        restic = self.restic()
        snapshot, name = await self.find_snapshot(ref, service, restic)
        spec = self.settings.services.get(name) or ServiceSettings(paths=[Path(p) for p in snapshot.paths])
        report = RestoreReport(snapshot, name, into_place=True, units=list(spec.units))
        listing = await self._listing(restic, snapshot)
        staged: list[tuple[Path, Path]] = []
        try:
            for live in map(Path, snapshot.paths):
                stage = _staging_dir(live, snapshot)
                await asyncio.to_thread(_remove_all, [stage])  # left by an interrupted restore
                staged.append((live, stage))
                await _say(progress, f"restoring {live} into a temporary directory", None)
                restored = await self._restore_path(restic, snapshot, listing, live, stage)
                report.paths.append(RestoredPath(str(live), str(live), restored[0], restored[1]))
            await _say(progress, "snapshot of the current data (pre-restore)", None)
            report.pre_restore = await self._pre_restore_snapshot(restic, name, spec, snapshot, report)
            await self._swap_with_units_stopped(spec.units, staged, progress, report)
        finally:
            await asyncio.to_thread(_remove_all, [stage for _, stage in staged])
        return report

    async def restore_to(self, ref: str, service: str | None, target: Path,
                         progress: Progress | None = None) -> RestoreReport:
        """Restore next to the live data without touching it: into `target` (new or empty), as
        target/<service>/<path below the snapshot's common parent> — one path /srv/data/photos of
        service `photos` lands in target/photos/photos, not target/srv/data/photos."""
        restic = self.restic()
        snapshot, name = await self.find_snapshot(ref, service, restic)
        _check_target(target, snapshot, self.settings.services.values())
        return await self._copy_out(restic, snapshot, name, target, progress)

    async def restore_all_to(self, target: Path, progress: Progress | None = None) -> list[RestoreReport]:
        """The latest snapshot of every configured service, each into target/<service>/… (target new or
        empty); services without a snapshot yet are left out (the caller says so)."""
        restic = self.restic()
        latest = {name: (await self.snapshots(name, restic))[-1:] for name in self.settings.services}
        chosen = [(snaps[0], name) for name, snaps in latest.items() if snaps]
        if not chosen:
            raise UserError("there is no snapshot to restore yet", "run !backup now first")
        for snapshot, _ in chosen:
            _check_target(target, snapshot, self.settings.services.values())
        return [await self._copy_out(restic, snapshot, name, target, progress) for snapshot, name in chosen]

    async def _copy_out(self, restic: Restic, snapshot: Snapshot, name: str, target: Path,
                        progress: Progress | None) -> RestoreReport:
        listing = await self._listing(restic, snapshot)
        report = RestoreReport(snapshot, name, into_place=False)
        stage = target / f".spbot-restoring-{snapshot.short_id}"
        await _say(progress, f"restoring snapshot {snapshot.short_id} into {target}", None)
        try:
            await restic.restore(snapshot.id, stage, verify=True, timeout=self.settings.timeout)
            places = copy_places(snapshot.paths, target / name)
            for live, copy in places.items():
                part = sub_listing(listing, live)
                files, size = await asyncio.to_thread(_check_restored, part, stage, live)
                await asyncio.to_thread(_move_into, stage / live.lstrip("/"), copy)
                report.paths.append(RestoredPath(live, str(copy), files, size))
        except ResticError as exc:
            raise UserError(f"restoring snapshot {snapshot.short_id} into {target} failed: {exc}",
                            advice(exc.kind, self)) from None
        finally:
            await asyncio.to_thread(_remove_all, [stage])
        return report

    async def _listing(self, restic: Restic, snapshot: Snapshot) -> Listing:
        try:
            return await restic.ls(snapshot.id)
        except ResticError as exc:
            raise _restic_user_error(exc, self) from None

    async def _restore_path(self, restic: Restic, snapshot: Snapshot, listing: Listing, live: Path,
                            stage: Path) -> tuple[int, int]:
        try:
            await restic.restore(snapshot.id, stage, include=[restic_pattern(str(live))], verify=True,
                                 timeout=self.settings.timeout)
        except ResticError as exc:
            raise UserError(f"restoring {live} from snapshot {snapshot.short_id} failed, nothing live was "
                            f"changed: {exc}", advice(exc.kind, self)) from None
        return await asyncio.to_thread(_check_restored, sub_listing(listing, str(live)), stage, str(live))

    async def _pre_restore_snapshot(self, restic: Restic, name: str, spec: ServiceSettings,
                                    snapshot: Snapshot, report: RestoreReport) -> str:
        existing = [Path(p) for p in snapshot.paths if os.path.lexists(p)]
        if not existing:
            report.warnings.append("there was no live data to snapshot before the restore")
            return ""
        outcome = await self.backup_service(restic, name, spec, "pre-restore", paths=existing)
        await self.log.record(outcome)
        if not outcome.ok:
            raise UserError(f"the pre-restore snapshot of the current data failed, so nothing was replaced: "
                            f"{outcome.error}", outcome.todo)
        return outcome.snapshot_id

    async def _swap_with_units_stopped(self, units: list[str], staged: list[tuple[Path, Path]],
                                       progress: Progress | None, report: RestoreReport) -> None:
        if units:
            await _say(progress, f"stopping {', '.join(units)}", None)
            await self._systemctl("stop", units, report, must=True)
        try:
            await _say(progress, "moving the restored data into place", None)
            await asyncio.to_thread(swap_into_place, staged)
        finally:
            if units:
                await _say(progress, f"starting {', '.join(units)}", None)
                await self._systemctl("start", units, report, must=False)

    async def _systemctl(self, action: str, units: list[str], report: RestoreReport, *, must: bool) -> None:
        try:
            result = await run([self.settings.systemctl, action, "--", *units],
                               timeout=self.settings.command_timeout)
            problem = "" if result.ok else (f"exit {result.returncode}: {result.tail(2)}" if not result.timed_out
                                            else f"no answer in {result.duration:.0f} s")
        except ProcError as exc:
            problem = str(exc)
        if not problem:
            return
        if must:
            await self._systemctl("start", units, report, must=False)
            raise UserError(f"systemctl {action} {' '.join(units)} failed, so nothing was replaced: {problem}",
                            "check the units with !services or journalctl, then try the restore again")
        report.warnings.append(f"systemctl {action} {' '.join(units)} failed ({problem}): check them now "
                               "(journalctl -u <unit>)")

    # ---- drill

    async def drill(self, names: Sequence[str] = ()) -> list[DrillResult]:
        """Restore a sample of files from each service's latest snapshot and compare them with the live
        files that have not changed since (same size and modification time)."""
        services = self.select(names)
        restic = self.restic()
        return [await self._drill_one(restic, name) for name, _ in services]

    async def _drill_one(self, restic: Restic, name: str) -> DrillResult:
        result = DrillResult(name)
        try:
            found = await restic.snapshots(tags=[f"service:{name}"])
            if not found:
                result.error = "no snapshot yet"
                return result
            result.snapshot = found[-1]
            listing = await restic.ls(result.snapshot.id)
            files = [n for n in listing.nodes if n.type == "file"]
            result.files = len(files)
            candidates = await asyncio.to_thread(lambda: [n for n in files if unchanged_since_snapshot(n)])
            result.comparable = len(candidates)
            sample = _sample(candidates, self.settings.drill_files, self.settings.drill_max_bytes)
            if not sample:
                return result
            work = self.state_dir / "backup-work"
            work.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="drill-", dir=work) as tmp:
                await restic.restore(result.snapshot.id, tmp, include=[restic_pattern(n.path) for n in sample],
                                     timeout=self.settings.timeout)
                result.mismatches = await asyncio.to_thread(_compare, sample, Path(tmp))
            result.checked = len(sample)
        except ResticError as exc:
            result.error = str(exc)
        return result

    # ---- set-up

    async def setup_b2(self, bucket: str | None = None) -> B2Setup:
        """Create (or adopt) the private bucket, set the keep-deleted-days lifecycle rule, create a key that
        can use only that bucket and store it 0600 where restic's repository settings read it."""
        b2 = self.settings.b2
        repo = self.settings.repository
        bucket = bucket or (repo.bucket if isinstance(repo, B2RepositorySettings) else None)
        if not bucket:
            raise UserError("which bucket?", "give its name: !backup setup b2 <bucket>, or set [backup.repository] "
                            "kind = \"b2\" and bucket = \"...\"")
        if not b2.master_key_id or b2.master_key is None:
            raise UserError("the Backblaze B2 account key is not configured",
                            "put master_key_id and master_key = {file = \"...\"} in [backup.b2] (a key with "
                            "writeBuckets and writeKeys), restart the bot and try again")
        provider = self.b2_provider(b2.master_key_id, SecretStr(_read_secret(b2.master_key, "B2 account key")))
        try:
            info = await provider.ensure_bucket(bucket, keep_deleted_days=b2.keep_deleted_days)
            key = await provider.create_restricted_key(bucket, b2.key_name)
            endpoint = await provider.s3_endpoint()
        except B2Error as exc:
            raise UserError(str(exc), "fix that and run !backup setup b2 again") from None
        key_file = self.b2_key_file()
        write_private(key_file, json.dumps({"key_id": key.key_id, "key": key.key.get_secret_value(),
                                            "bucket": bucket, "name": key.name, "created": time.time(),
                                            "s3_endpoint": endpoint}) + "\n")
        return B2Setup(bucket, info.created, b2.keep_deleted_days, key.name, key.key_id, key.capabilities, key_file)

    async def check_setup(self) -> list[tuple[str, str]]:
        """(mark, text) lines: `ok`, `warn` or `fail`; for `!backup setup` and `spbot doctor`."""
        lines: list[tuple[str, str]] = []
        restic_path = shutil.which(self.settings.restic)
        if restic_path is None:
            return [("fail", f"restic is not installed ({self.settings.restic} not found): apt-get install restic")]
        lines.append(("ok", f"restic found at {restic_path}"))
        lines += _password_file_lines(self)
        try:
            restic = self.restic()
        except UserError as exc:
            return lines + [("fail", f"{exc.what}: {exc.todo}")]
        try:
            found = await restic.snapshots(timeout=60)
            lines.append(("ok", f"repository {_safe_location(restic)} opens ({len(found)} snapshots)"))
        except ResticError as exc:
            lines.append(("fail", f"repository {_safe_location(restic)}: {exc.args[0].splitlines()[0]} — "
                                  f"{advice(exc.kind, self)}"))
        lines += _service_lines(self.settings)
        if isinstance(self.settings.repository, B2RepositorySettings):
            mode = _mode(self.b2_key_file())
            lines.append(("ok", f"B2 key file {self.b2_key_file()} (mode {mode:o})") if mode == 0o600 else
                         ("fail", f"B2 key file {self.b2_key_file()} is missing or not 0600: run !backup setup b2"))
        return lines


# --------------------------------------------------------------------------- helpers


def service_of(snapshot: Snapshot) -> str | None:
    return next((t.split(":", 1)[1] for t in snapshot.tags if t.startswith("service:")), None)


def reason_of(snapshot: Snapshot) -> str:
    return next((t.split(":", 1)[1] for t in snapshot.tags if t.startswith("reason:")), "?")


def status_line(label: str, s: BackupStatus) -> str:
    files = f"{s.files_done:,}/{s.total_files:,} files" if s.total_files else f"{s.files_done:,} files"
    parts = [label, files, f"{human_bytes(s.bytes_done)} of {human_bytes(s.total_bytes)}"]
    if s.seconds_remaining:
        parts.append(f"ETA {human_duration(s.seconds_remaining)}")
    return " · ".join(parts)


def restic_pattern(path: str) -> str:
    """restic's --include takes patterns: escape the pattern characters a file name may hold."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", path)


def sub_listing(listing: Listing, path: str) -> Listing:
    """The part of a snapshot listing at or under `path` (not its parent directories)."""
    prefix = path.rstrip("/") + "/"
    part = Listing(snapshot=listing.snapshot)
    for node in listing.nodes:
        if node.path == path or node.path.startswith(prefix):
            part.add(node)
    return part


def _check_restored(part: Listing, target: Path, live: str) -> tuple[int, int]:
    """Blocking: the restored copy of `live` under `target` against the listing: every entry present,
    file sizes equal, and no more files than the snapshot holds. Returns (files, bytes)."""
    check = verify_restored(part, target)
    copy = Path(target) / live.lstrip("/")
    found = _count_files(copy)
    if not check.ok or found != part.files:
        problems = [f"missing: {', '.join(check.missing[:3])}"] if check.missing else []
        problems += [f"wrong size: {', '.join(check.wrong_size[:3])}"] if check.wrong_size else []
        problems += [f"{found} files restored, the snapshot lists {part.files}"] if found != part.files else []
        raise UserError(f"the restored copy of {live} does not match the snapshot ({'; '.join(problems)}); "
                        "nothing live was changed", "run restic check on the repository; try an older snapshot")
    return part.files, part.total_size


def _count_files(root: Path) -> int:
    if root.is_symlink() or root.is_file():
        return 1 if root.is_file() and not root.is_symlink() else 0
    count = 0
    for dirpath, _, filenames in os.walk(root):
        count += sum(1 for f in filenames if os.path.isfile(os.path.join(dirpath, f))
                     and not os.path.islink(os.path.join(dirpath, f)))
    return count


def _staging_dir(live: Path, snapshot: Snapshot) -> Path:
    """Next to the live data, so moving it into place is a rename on the same filesystem."""
    if live == live.parent:
        raise UserError("restoring / into place is not supported", "use --to <path>")
    return live.parent / f".spbot-restore-{snapshot.short_id}-{live.name}"


def swap_into_place(staged: list[tuple[Path, Path]]) -> None:
    """Blocking: rename each live path aside, rename the restored copy in, then delete the old data.
    If a step fails, what was already swapped is put back."""
    done: list[tuple[Path, Path | None]] = []
    try:
        for live, stage in staged:
            restored = stage / str(live).lstrip("/")
            aside = live.parent / f".spbot-replaced-{stage.name.removeprefix('.spbot-restore-')}"
            had_live = os.path.lexists(live)
            if had_live:
                os.rename(live, aside)
            done.append((live, aside if had_live else None))
            os.rename(restored, live)
    except OSError as exc:
        for live, aside in reversed(done):
            if aside is not None:
                if os.path.lexists(live):
                    _remove(live)
                os.rename(aside, live)
        raise UserError(f"moving the restored data into place failed ({exc.strerror}); the live data was put back",
                        "check the free space and permissions next to the live data") from None
    _remove_all([aside for _, aside in done if aside is not None])


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _remove_all(paths: Sequence[Path]) -> None:
    for path in paths:
        if os.path.lexists(path):
            _remove(Path(path))


def copy_places(paths: Sequence[str], root: Path) -> dict[str, Path]:
    """Where each snapshot path goes under `root`: its path below the common parent of all of them."""
    parent = Path(os.path.commonpath([str(Path(p).parent) for p in paths])) if paths else Path("/")
    return {p: root / Path(p).relative_to(parent) for p in paths}


def _move_into(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(source):
        os.replace(source, destination)


def _same_device(repository: Path, data: Path) -> bool:
    """Whether two paths (or their nearest existing parents) are on the same filesystem."""
    def device(path: Path) -> int | None:
        for candidate in (path, *path.parents):
            try:
                return candidate.stat().st_dev
            except OSError:
                continue
        return None
    first, second = device(repository), device(data)
    return first is not None and first == second


def _check_target(target: Path, snapshot: Snapshot, services: Iterable[ServiceSettings]) -> None:
    if not target.is_absolute():
        raise UserError(f"--to needs an absolute path, not {target}", "e.g. --to /root/restored")
    live = {Path(p) for p in snapshot.paths} | {p for s in services for p in s.paths}
    for path in live:
        if target == path or path in target.parents or target in path.parents:
            raise UserError(f"{target} overlaps the live data at {path}", "choose a directory outside it")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"{target} exists and is not an empty directory", "choose a new or empty directory")


def unchanged_since_snapshot(node: Node) -> bool:
    """The live file has the snapshot's size and modification time (restic keeps microseconds here)."""
    try:
        st = os.lstat(node.path)
    except OSError:
        return False
    if not _is_regular(st.st_mode) or st.st_size != node.size or node.mtime is None:
        return False
    snap_us = (node.mtime - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
    return abs(st.st_mtime_ns // 1000 - snap_us) <= 1


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def _sample(nodes: list[Node], count: int, max_bytes: int) -> list[Node]:
    chosen, total = [], 0
    for node in random.sample(nodes, len(nodes)):
        if len(chosen) >= count:
            break
        if total + node.size <= max_bytes:
            chosen.append(node)
            total += node.size
    return chosen


def _compare(sample: list[Node], restored_root: Path) -> list[str]:
    """Blocking: paths whose restored content differs from the live file."""
    return [n.path for n in sample
            if not filecmp.cmp(restored_root / n.path.lstrip("/"), n.path, shallow=False)]


def write_private(path: Path, text: str) -> None:
    """Write a secret file readable by the owner only (0600 from the first byte), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_secret(secret: Secret, what: str) -> str:
    try:
        return secret.read()
    except ConfigError as exc:
        raise UserError(f"the {what} cannot be read: {exc.problems[0]}", "fix the file or variable in [backup]") from None


def _safe_location(restic: Restic) -> str:
    return scrub(restic.repository.location(), restic.repository.secrets())


def _mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return None


def _password_file_lines(backups: Backups) -> list[tuple[str, str]]:
    path = backups.password_path()
    if path is None:
        return [("ok", "repository password comes from an environment variable")]
    mode = _mode(path)
    if mode is None:
        return [("fail", f"repository password file {path} is missing: !backup setup init creates it "
                         "(for a new repository)")]
    if mode & 0o077:
        return [("warn", f"repository password file {path} is readable by others (mode {mode:o}): chmod 600 it")]
    return [("ok", f"repository password file {path} (mode {mode:o})")]


def _service_lines(settings: BackupSettings) -> list[tuple[str, str]]:
    if not settings.services:
        return [("warn", "no services configured: add [backup.services.NAME] paths = [...]")]
    lines = []
    for name, spec in sorted(settings.services.items()):
        missing = [str(p) for p in spec.paths if not p.exists()]
        lines.append(("warn", f"service {name}: missing paths {', '.join(missing)}") if missing
                     else ("ok", f"service {name}: {len(spec.paths)} path(s) present"))
    return lines


async def _say(progress: Progress | None, step: str, fraction: float | None) -> None:
    if progress is not None:
        await progress(step, fraction)


# --------------------------------------------------------------------------- rendering


def local_time(value: datetime | float, tz: str) -> str:
    when = datetime.fromtimestamp(value, timezone.utc) if isinstance(value, (int, float)) else value
    return when.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def render_list(snapshots: list[Snapshot], sizes: dict[str, int], tz: str, per_service: int = 10) -> Reply:
    if not snapshots:
        return Reply.text("no snapshots yet — run !backup now")
    by_service: dict[str, list[Snapshot]] = {}
    for s in snapshots:
        by_service.setdefault(service_of(s) or "(other)", []).append(s)
    reply: Reply | None = None
    for name in sorted(by_service):
        shown = by_service[name][-per_service:]
        rows = [[s.short_id, local_time(s.time, tz), reason_of(s),
                 human_bytes(sizes[s.short_id]) if s.short_id in sizes else "?"] for s in reversed(shown)]
        more = len(by_service[name]) - len(shown)
        title = f"{name}: {len(by_service[name])} snapshot(s)" + (f", newest {len(shown)} shown" if more else "")
        part = table(["snapshot", "time", "reason", "size"], rows, title=title, align_right=[3])
        reply = part if reply is None else reply + part
    return reply


def render_stats(report: StatsReport, tz: str) -> Reply:
    lines = [f"Repository {report.location}: {report.snapshots} snapshot(s), "
             f"{human_bytes(report.stored_size)} stored for {human_bytes(report.restore_size)} of snapshots "
             f"(dedup {report.dedup_ratio:.1f}×)"]
    now = time.time()
    for name, row in report.last.items():
        if row is None:
            lines.append(f"⚠️ {name}: no successful backup yet")
        else:
            lines.append(f"✅ {name}: last success {local_time(row['ended'], tz)} "
                         f"({human_duration(now - row['ended'])} ago, {row['reason']}, snapshot "
                         f"{(row['snapshot_id'] or '')[:8]})")
    if report.b2_usage is not None:
        u = report.b2_usage
        lines.append(f"Backblaze B2 bucket {u.bucket}: {human_bytes(u.total_bytes)} in {u.file_count:,} files; "
                     f"{human_bytes(u.stored_bytes)} billed including deleted data kept "
                     f"{report.keep_deleted_days} days")
    elif report.b2_error:
        lines.append(f"⚠️ Backblaze B2 usage unavailable: {report.b2_error}")
    if report.warning:
        lines.append(report.warning)
    return Reply.text("\n".join(lines))


def render_restore(report: RestoreReport, tz: str) -> Reply:
    s = report.snapshot
    head = (f"✅ restored {report.service} from snapshot {s.short_id} ({local_time(s.time, tz)}, {reason_of(s)})")
    lines = [head]
    for p in report.paths:
        where = f"into {p.live}" if report.into_place else f"{p.live} → copied to {p.copy}"
        lines.append(f"   {where}: {p.files:,} files, {human_bytes(p.size)} — verified (file count and sizes "
                     "match the snapshot; restic re-read the content)")
    if report.into_place:
        if report.pre_restore:
            lines.append(f"   the data it replaced is in snapshot {report.pre_restore} (reason pre-restore)")
        if report.units:
            lines.append(f"   stopped and started again: {', '.join(report.units)}")
    else:
        lines.append("   the live data was not touched")
    lines += [f"   ⚠️ {w}" for w in report.warnings]
    return Reply.text("\n".join(lines))


def render_drill(results: list[DrillResult]) -> Reply:
    lines = []
    for r in results:
        snap = f"snapshot {r.snapshot.short_id}" if r.snapshot else ""
        if r.error:
            lines.append(f"❌ {r.service}: drill failed: {r.error}")
        elif r.mismatches:
            lines.append(f"❌ {r.service}: {len(r.mismatches)} of {r.checked} sampled files differ from {snap} "
                         f"although unchanged since: {', '.join(r.mismatches[:5])}")
        elif not r.checked:
            lines.append(f"➖ {r.service}: nothing to compare ({r.files} files in {snap}, none unchanged since)")
        else:
            lines.append(f"✅ {r.service}: {r.checked} files restored from {snap} match the live files "
                         f"({r.comparable} of {r.files} unchanged since the snapshot)")
    return Reply.text("🔎 restore drill\n" + "\n".join(lines))


def render_forget(result: RetentionReport) -> Reply:
    def part(label: str, r: ForgetResult) -> str:
        return f"{label}: kept {len(r.kept)}, removed {len(r.removed)}"
    text = " · ".join([part("automatic", result.auto),
                       part(f"manual (the last {result.keep_manual} per service)", result.manual),
                       part(f"pre-restore ({result.keep_pre_restore_days} days)", result.pre_restore)])
    pruned = result.auto.pruned and result.removed
    return Reply.text(f"🧹 retention applied — {text}" + (" (unused data pruned)" if pruned else ""))


def render_forgotten(snapshot: Snapshot, service: str, tz: str) -> Reply:
    return Reply.text(f"🗑 snapshot {snapshot.short_id} of {service} ({local_time(snapshot.time, tz)}, "
                      f"{reason_of(snapshot)}) is gone; the data no other snapshot uses was removed.")


def render_setup(lines: list[tuple[str, str]]) -> Reply:
    icons = {"ok": "✅", "warn": "⚠️", "fail": "❌"}
    body = "\n".join(f"{icons[m]} {t}" for m, t in lines)
    nxt = next((t for m, t in lines if m == "fail"), None)
    body += "\nNext: " + ("fix the ❌ line above." if nxt else "!backup now to make the first snapshots.")
    return Reply.text("Backup set-up\n" + body)


async def render_digest(backups: Backups, now: float, tz: str) -> Reply | None:
    runs = await backups.log.since(now - 86400)
    names = sorted(backups.settings.services)
    if not names:
        return None
    parts = []
    for name in names:
        mine = [r for r in runs if r["service"] == name]
        good = [r for r in mine if r["ok"]]
        bad = [r for r in mine if not r["ok"]]
        if good:
            added = sum(r["data_added"] for r in good)
            text = f"{name} ✅ {len(good)}× (last {local_time(good[-1]['ended'], tz)}, +{human_bytes(added)})"
        else:
            text = f"{name} ⚠️ no backup"
        if bad:
            text += f", ❌ {len(bad)} failed"
        parts.append(text)
    warning = backups.same_disk_warning()
    return Reply.text("🗄 backups, last 24 h: " + " · ".join(parts) + (f"\n{warning}" if warning else ""))


# --------------------------------------------------------------------------- the bot's side

_BY_BOT: "weakref.WeakKeyDictionary[Bot, Backups]" = weakref.WeakKeyDictionary()


def backups_of(bot: "Bot") -> Backups:
    if bot not in _BY_BOT:
        _BY_BOT[bot] = Backups(bot.config.settings("backup"), bot.config.state_dir, bot.store)
    return _BY_BOT[bot]


async def run_and_alert(bot: "Bot", names: Sequence[str], reason: str, progress: Progress | None = None,
                        on_outcome: Callable[[Outcome], Awaitable[None]] | None = None) -> list[Outcome]:
    """Back up, then alert the admins (with a mention) on each failure and clear it on success."""
    backups = backups_of(bot)
    try:
        outcomes = await backups.run(names, reason, progress, on_outcome)
    except UserError as exc:
        if reason == "auto":
            await bot.alerts.fire("backup:setup", "critical", f"automatic backups cannot run: {exc.what}", exc.todo)
        raise
    await bot.alerts.clear("backup:setup", "backups can run again")
    for o in outcomes:
        key = f"backup:failed:{o.service}"
        if o.ok:
            await bot.alerts.clear(key, f"{o.service} was backed up again (snapshot {o.snapshot_id})")
        elif not o.skipped:
            others = [x.service for x in outcomes if x.skipped]
            note = f" ({', '.join(others)} not attempted)" if others else ""
            await bot.alerts.fire(key, "warning", f"{reason} backup of {o.service} failed{note}: {o.error}", o.todo)
    return outcomes


def reply_for(outcomes: list[Outcome], *, each_said: bool = False) -> Reply:
    """The final result of a chat backup: every service's line, or only a summary when each service's
    line was already posted. Raises UserError when a service failed."""
    failed = [o for o in outcomes if not o.ok]
    names = ", ".join(o.service for o in outcomes)
    if not failed:
        return Reply.text(f"✅ backup done: {names}" if each_said else "\n".join(o.line() for o in outcomes))
    if not each_said:
        raise UserError("\n".join(o.line() for o in outcomes).removeprefix("❌ "))
    first = next(o for o in failed if not o.skipped)
    raise UserError(f"backup failed for {', '.join(o.service for o in failed)} "
                    f"({len(outcomes) - len(failed)} of {len(outcomes)} backed up)", f"What to do: {first.todo}")


async def scheduled_backup(bot: "Bot") -> None:
    """The cron entry point: an automatic backup of every service, quiet on success."""
    from spbot.jobs import JobRefused

    async def work(job) -> Reply | None:
        try:
            await run_and_alert(bot, (), "auto")
        except UserError:
            pass  # alerted in run_and_alert
        return None

    try:
        await bot.jobs.run_scheduled("backup now", work, locks=frozenset({"system"}))
    except JobRefused as exc:
        log.info("backup_auto_skipped", reason=str(exc))


async def scheduled_forget(bot: "Bot") -> None:
    from spbot.jobs import JobRefused

    async def work(job) -> Reply | None:
        try:
            result = await backups_of(bot).forget()
        except UserError as exc:
            await bot.alerts.fire("backup:retention", "warning", f"applying backup retention failed: {exc.what}",
                                  exc.todo)
            return None
        await bot.alerts.clear("backup:retention", "backup retention works again")
        await bot.store.put("backup:last_forget", {"time": time.time(), "kept": len(result.kept),
                                                   "removed": len(result.removed)})
        return None

    try:
        await bot.jobs.run_scheduled("backup prune", work, locks=frozenset({"system"}))
    except JobRefused as exc:
        log.info("backup_forget_skipped", reason=str(exc))


async def drill_and_alert(bot: "Bot", names: Sequence[str] = ()) -> Reply:
    results = await backups_of(bot).drill(names)
    for r in results:
        key = f"backup:drill:{r.service}"
        if r.mismatches:
            await bot.alerts.fire(key, "critical",
                                  f"restore drill of {r.service}: {len(r.mismatches)} file(s) restored from "
                                  f"snapshot {r.snapshot.short_id} differ from the live copy although unchanged "
                                  f"since: {', '.join(r.mismatches[:3])}",
                                  "the live file or the backup is damaged: compare by hand after !backup restore "
                                  f"{r.snapshot.short_id} {r.service} --to /root/check, and run restic check")
        elif r.error and r.error != "no snapshot yet":
            await bot.alerts.fire(key, "warning", f"restore drill of {r.service} failed: {r.error}",
                                  "see the message; run !backup drill again once it is fixed")
        else:
            await bot.alerts.clear(key, f"restore drill of {r.service} passes again")
    return render_drill(results)


async def scheduled_drill(bot: "Bot") -> None:
    from spbot.jobs import JobRefused

    async def work(job) -> Reply | None:
        try:
            return await drill_and_alert(bot)
        except UserError as exc:
            await bot.alerts.fire("backup:drill", "warning", f"restore drill could not run: {exc.what}", exc.todo)
            return None

    try:
        await bot.jobs.run_scheduled("backup drill", work, locks=frozenset({"system"}))
    except JobRefused as exc:
        log.info("backup_drill_skipped", reason=str(exc))


async def send_digest(bot: "Bot") -> None:
    reply = await render_digest(backups_of(bot), time.time(), bot.config.timezone)
    if reply is not None:
        await bot.notify(reply)


async def overdue(backups: Backups, now: float) -> list[tuple[str, float, Any]]:
    """(service, seconds since its last success or since spbot first knew it, last success row)."""
    late = []
    for name in sorted(backups.settings.services):
        row = await backups.log.last_success(name)
        since = row["ended"] if row is not None else await backups.log.first_seen(name, now)
        if now - since > backups.settings.max_age:
            late.append((name, now - since, row))
    return late


async def watchdog_pass(bot: "Bot", now: float | None = None) -> None:
    """Alert on every service without a successful backup for longer than max_age. It reads the run
    log, not the scheduler: a schedule that never fired is caught as well."""
    now = time.time() if now is None else now
    backups = backups_of(bot)
    late = {name: (age, row) for name, age, row in await overdue(backups, now)}
    for name in sorted(backups.settings.services):
        key = f"backup:stale:{name}"
        if name in late:
            age, row = late[name]
            last = f"last success {local_time(row['ended'], bot.config.timezone)}" if row else "never backed up"
            await bot.alerts.fire(key, "critical", f"no successful backup of {name} for {human_duration(age)} "
                                  f"({last})", f"see !backup stats and the last failure; run !backup now {name}")
        else:
            await bot.alerts.clear(key, f"{name} has a recent backup again")


async def _watchdog_loop(bot: "Bot") -> None:
    # A plain task, not an APScheduler job: it keeps watching even if the scheduler is stuck.
    interval = max(backups_of(bot).settings.watchdog_interval, 1.0)
    while True:
        try:
            await watchdog_pass(bot)
        except Exception:
            log.exception("backup_watchdog_failed")
        await asyncio.sleep(interval)


async def status_lines(bot: "Bot") -> list[str]:
    backups = backups_of(bot)
    parts = []
    for name in sorted(backups.settings.services):
        row = await backups.log.last_success(name)
        parts.append(f"{name} {human_duration(time.time() - row['ended'])} ago" if row else f"{name} never")
    return ["backups (last success): " + ", ".join(parts)] if parts else []


async def install(bot: "Bot") -> None:
    """Startup: the run log's tables, the schedules, the watchdog and a !status line."""
    backups = backups_of(bot)
    await backups.log.start()
    bot.status_sections.append(status_lines)
    if not backups.settings.services:
        return
    s = backups.settings
    tz = bot.config.timezone
    for job_id, name, expr, fn in [("backup-auto", "automatic backup", s.schedule, scheduled_backup),
                                   ("backup-retention", "backup retention", s.retention_schedule, scheduled_forget),
                                   ("backup-drill", "backup restore drill", s.drill_schedule, scheduled_drill),
                                   ("backup-digest", "backup digest", s.digest_schedule, send_digest)]:
        if enabled(expr):
            bot.scheduler.add_job(fn, cron_trigger(expr, tz), args=[bot], id=job_id, name=name,
                                  replace_existing=True, misfire_grace_time=int(s.misfire_grace),
                                  coalesce=True, max_instances=1)
    bot.spawn(_watchdog_loop(bot), name="backup watchdog")


# --------------------------------------------------------------------------- spbot doctor


async def doctor_check(config, line: Callable[[str, str], None]) -> int:
    """`spbot doctor`: the backup set-up, line by line; returns the number of failures."""
    if "backup" not in (config.model_extra or {}):
        return 0
    backups = Backups(config.settings("backup"), config.state_dir, None)
    lines = await backups.check_setup()
    marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
    for mark, text in lines:
        line(marks[mark], f"backup: {text}")
    return sum(1 for mark, _ in lines if mark == "fail")
