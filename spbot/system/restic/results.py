"""What restic operations return, read from its JSON leniently (newer versions add fields)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, model_validator
from spbot.model import Model

def _none_as_empty(value: Any) -> Any:
    return [] if value is None else value


StrList = Annotated[list[str], BeforeValidator(_none_as_empty)]


class _Parsed(Model):
    """restic's JSON; newer versions add fields, which are ignored."""

    model_config = ConfigDict(extra="ignore")


class Snapshot(_Parsed):
    id: str
    short_id: str = ""
    time: datetime
    paths: StrList = []
    hostname: str = ""
    username: str = ""
    tags: StrList = []
    tree: str = ""
    parent: str | None = None

    @model_validator(mode="after")
    def _fill_short_id(self) -> Snapshot:
        if not self.short_id:
            self.short_id = self.id[:8]
        return self


class BackupStatus(_Parsed):
    """One progress line of `backup --json`."""

    percent_done: float = 0.0
    files_done: int = 0
    total_files: int = 0
    bytes_done: int = 0
    total_bytes: int = 0
    seconds_elapsed: int = 0
    seconds_remaining: int | None = None
    error_count: int = 0
    current_files: StrList = []


class BackupSummary(_Parsed):
    """The last line of `backup --json`, plus what stderr said when some files could not be read."""

    snapshot_id: str | None = None
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    dirs_new: int = 0
    dirs_changed: int = 0
    dirs_unmodified: int = 0
    data_blobs: int = 0
    tree_blobs: int = 0
    data_added: int = 0
    total_files_processed: int = 0
    total_bytes_processed: int = 0
    total_duration: float = 0.0
    incomplete: bool = False  # exit code 3: snapshot made, but some files were unreadable
    warnings: list[str] = []  # what restic said on stderr, e.g. "/srv/x does not exist, skipping"


class RetentionPolicy(Model):
    """How many snapshots `forget` keeps, per restic's --keep-* rules (at least one must be set)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keep_last: int | None = Field(default=None, ge=1, description="The most recent snapshots to keep.")
    keep_hourly: int | None = Field(default=None, ge=1, description="Hours for which the last snapshot is kept.")
    keep_daily: int | None = Field(default=None, ge=1, description="Days for which the last snapshot is kept.")
    keep_weekly: int | None = Field(default=None, ge=1, description="Weeks for which the last snapshot is kept.")
    keep_monthly: int | None = Field(default=None, ge=1, description="Months for which the last snapshot is kept.")
    keep_yearly: int | None = Field(default=None, ge=1, description="Years for which the last snapshot is kept.")

    @model_validator(mode="after")
    def _not_empty(self) -> RetentionPolicy:
        if not self.flags():
            raise ValueError("a retention policy needs at least one keep_* value")
        return self

    def flags(self) -> list[str]:
        return [
            f"--{name.replace('_', '-')}={value}"
            for name, value in self.model_dump().items()
            if value is not None
        ]


class ForgetGroup(_Parsed):
    host: str = ""
    paths: StrList = []
    tags: StrList = []
    keep: Annotated[list[Snapshot], BeforeValidator(_none_as_empty)] = []
    remove: Annotated[list[Snapshot], BeforeValidator(_none_as_empty)] = []


class ForgetResult(Model):
    groups: list[ForgetGroup] = []
    pruned: bool = False

    @property
    def kept(self) -> list[Snapshot]:
        return [s for g in self.groups for s in g.keep]

    @property
    def removed(self) -> list[Snapshot]:
        return [s for g in self.groups for s in g.remove]


class Node(_Parsed):
    """One entry of `ls --json`."""

    name: str
    type: str  # file, dir, symlink, dev, fifo, socket ...
    path: str
    size: int = 0
    mode: int | None = None
    mtime: datetime | None = None
    # No link target: `ls --json` (cmd/restic/cmd_ls.go, lsNode) reports none in any version.


class Listing(Model):
    """What a snapshot holds: counts and sizes, to verify a restore against."""

    snapshot: Snapshot | None = None
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    others: int = 0
    total_size: int = 0
    nodes: list[Node] = []

    def add(self, node: Node, keep: bool = True) -> None:
        """Count a node into the totals, and keep it in `nodes` when asked."""
        if node.type == "file":
            self.files += 1
            self.total_size += node.size
        elif node.type == "dir":
            self.dirs += 1
        elif node.type == "symlink":
            self.symlinks += 1
        else:
            self.others += 1
        if keep:
            self.nodes.append(node)


class RestoreCheck(Model):
    """A restored tree compared with a listing: what is missing or has the wrong size."""

    checked: int = 0
    missing: list[str] = []
    wrong_size: list[str] = []

    @property
    def ok(self) -> bool:
        return not self.missing and not self.wrong_size


class CheckResult(Model):
    ok: bool
    output: str  # restic's last lines, for showing


StatsMode = Literal["restore-size", "raw-data", "files-by-contents", "blobs-per-file"]


class Stats(_Parsed):
    total_size: int = 0
    total_file_count: int = 0
    total_blob_count: int | None = None
    snapshots_count: int | None = None
    total_uncompressed_size: int | None = None  # restic >= 0.15, raw-data mode


class DedupReport(Model):
    restore_size: int  # what restoring every snapshot would write
    stored_size: int  # what the repository holds (after dedup and compression)

    @property
    def ratio(self) -> float:
        return self.restore_size / self.stored_size if self.stored_size else 0.0


ProgressCallback = Callable[[BackupStatus], Awaitable[None] | None]
