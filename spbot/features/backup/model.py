"""What backups produce: one service's outcome (with its short line for chat), the reports of restores,
drills, retention, stats and B2 set-up, and what to do after each kind of restic failure."""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spbot.context import UserError
from spbot.providers.b2 import BucketUsage
from spbot.render import human_bytes, human_duration
from spbot.system.restic import BackupSummary, ForgetResult, ResticError, ResticFailure, Snapshot

if TYPE_CHECKING:
    from .service import Backups

REASONS = ("manual", "auto", "pre-restore")
Progress = Callable[[str, "float | None"], Awaitable[None]]

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


def restic_user_error(exc: ResticError, backups: "Backups | None" = None) -> UserError:
    return UserError(str(exc), advice(exc.kind, backups))


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
    database: str = ""      # what was imported from the snapshot's dump
    health: str = ""        # the service's check after the restore


@dataclass
class Stopper:
    """How another feature stops and starts a service that has no systemd units (its containers) while a
    restore moves its data into place; each raises with a readable message when it fails."""
    what: str
    stop: Callable[[], Awaitable[None]]
    start: Callable[[], Awaitable[None]]


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



def service_of(snapshot: Snapshot) -> str | None:
    return next((t.split(":", 1)[1] for t in snapshot.tags if t.startswith("service:")), None)


def reason_of(snapshot: Snapshot) -> str:
    return next((t.split(":", 1)[1] for t in snapshot.tags if t.startswith("reason:")), "?")

