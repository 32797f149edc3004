"""restic as an async library: where the repository is, what each operation returns, and clear errors.

    repo = S3Repository(endpoint="https://s3.example", bucket="family", prefix="vps",
                        access_key_id="...", secret_access_key="...")
    restic = Restic(repo, password=Path("/var/lib/spbot/restic-password").read_text().strip())
    await restic.init()
    summary = await restic.backup(["/srv/nextcloud"], tags=["service:nextcloud", "reason:auto"],
                                  progress=show_progress)

Every call goes through `spbot.system.proc.run` (timeout, own process group, dies with the bot).
The repository password reaches restic through a pipe it inherits (RESTIC_PASSWORD_FILE=/dev/fd/N),
so it is never on disk, in an argument list or in an environment; the storage credentials go
through restic's environment. Error messages are scrubbed of all of them.
Works with restic 0.14 (Debian bookworm) and later: no --retry-lock, JSON parsed leniently.
"""
from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
import signal
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator, model_validator

from spbot.system.proc import LineCallback, ProcError, ProcResult, run

log = logging.getLogger(__name__)

T = TypeVar("T")

# --------------------------------------------------------------------------- repositories


class _Repository(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def location(self) -> str:
        """The value of RESTIC_REPOSITORY."""
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """Credentials restic reads from its environment."""
        return {}

    def secrets(self) -> list[str]:
        """Values that must never appear in a message."""
        return []


class LocalRepository(_Repository):
    kind: Literal["local"] = "local"
    path: Path

    def location(self) -> str:
        return str(self.path)


class S3Repository(_Repository):
    """Any S3-compatible store: `s3:<endpoint>/<bucket>[/<prefix>]`."""

    kind: Literal["s3"] = "s3"
    endpoint: str
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    prefix: str = ""
    access_key_id: str
    secret_access_key: SecretStr
    region: str | None = None

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError("endpoint must be http(s)://host[:port]")
        return value.rstrip("/")

    def location(self) -> str:
        tail = f"/{self.prefix.strip('/')}" if self.prefix.strip("/") else ""
        return f"s3:{self.endpoint}/{self.bucket}{tail}"

    def environment(self) -> dict[str, str]:
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key.get_secret_value(),
        }
        if self.region:
            env["AWS_DEFAULT_REGION"] = self.region
        return env

    def secrets(self) -> list[str]:
        return [self.secret_access_key.get_secret_value(), self.access_key_id]


class B2Repository(_Repository):
    """Backblaze B2 through its S3-compatible API: `s3:<endpoint>/<bucket>[/<prefix>]`.

    restic's documentation (doc/030_preparing_a_new_repo.rst, "Backblaze B2") recommends B2's
    S3-compatible API over its native `b2:` backend ("Due to issues with error handling in the current
    B2 library that restic uses"); a B2 application key is used as the S3 access key pair. Through S3
    restic's deletes only hide files, so the bucket needs the lifecycle rule `!backup setup b2` sets.
    A repository made with the native backend (`b2:<bucket>:<prefix>`) has the same layout and opens
    unchanged through this URL: nothing has to be copied."""

    kind: Literal["b2"] = "b2"
    bucket: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{6,50}$")]
    prefix: str = ""
    key_id: str
    key: SecretStr
    endpoint: str  # the account's S3 endpoint, e.g. https://s3.eu-central-003.backblazeb2.com

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError("endpoint must be http(s)://host[:port]")
        return value.rstrip("/")

    def location(self) -> str:
        prefix = self.prefix.strip("/")
        return f"s3:{self.endpoint}/{self.bucket}" + (f"/{prefix}" if prefix else "")

    def region(self) -> str | None:
        """B2's region is the second label of the S3 host: s3.<region>.backblazeb2.com."""
        match = re.match(r"^https?://s3\.([a-z0-9-]+)\.backblazeb2\.com", self.endpoint)
        return match.group(1) if match else None

    def environment(self) -> dict[str, str]:
        env = {"AWS_ACCESS_KEY_ID": self.key_id, "AWS_SECRET_ACCESS_KEY": self.key.get_secret_value()}
        if self.region():
            env["AWS_DEFAULT_REGION"] = self.region()
        return env

    def secrets(self) -> list[str]:
        return [self.key.get_secret_value(), self.key_id]


Repository = Annotated[LocalRepository | S3Repository | B2Repository, Field(discriminator="kind")]

# --------------------------------------------------------------------------- results


def _none_as_empty(value: Any) -> Any:
    return [] if value is None else value


StrList = Annotated[list[str], BeforeValidator(_none_as_empty)]


class _Parsed(BaseModel):
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


class RetentionPolicy(BaseModel):
    """How many snapshots `forget` keeps, per restic's --keep-* rules (at least one must be set)."""

    model_config = ConfigDict(frozen=True)

    keep_last: int | None = Field(default=None, ge=1)
    keep_hourly: int | None = Field(default=None, ge=1)
    keep_daily: int | None = Field(default=None, ge=1)
    keep_weekly: int | None = Field(default=None, ge=1)
    keep_monthly: int | None = Field(default=None, ge=1)
    keep_yearly: int | None = Field(default=None, ge=1)

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


class ForgetResult(BaseModel):
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


class Listing(BaseModel):
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


class RestoreCheck(BaseModel):
    """A restored tree compared with a listing: what is missing or has the wrong size."""

    checked: int = 0
    missing: list[str] = []
    wrong_size: list[str] = []

    @property
    def ok(self) -> bool:
        return not self.missing and not self.wrong_size


class CheckResult(BaseModel):
    ok: bool
    output: str  # restic's last lines, for showing


StatsMode = Literal["restore-size", "raw-data", "files-by-contents", "blobs-per-file"]


class Stats(_Parsed):
    total_size: int = 0
    total_file_count: int = 0
    total_blob_count: int | None = None
    snapshots_count: int | None = None
    total_uncompressed_size: int | None = None  # restic >= 0.15, raw-data mode


class DedupReport(BaseModel):
    restore_size: int  # what restoring every snapshot would write
    stored_size: int  # what the repository holds (after dedup and compression)

    @property
    def ratio(self) -> float:
        return self.restore_size / self.stored_size if self.stored_size else 0.0


ProgressCallback = Callable[[BackupStatus], Awaitable[None] | None]

# --------------------------------------------------------------------------- errors


class ResticFailure(StrEnum):
    WRONG_PASSWORD = "wrong_password"
    NO_REPOSITORY = "no_repository"
    LOCKED = "locked"
    UNREACHABLE = "unreachable"
    NO_SPACE = "no_space"
    DAMAGED = "damaged"
    TIMEOUT = "timeout"
    KILLED = "killed"
    NOT_INSTALLED = "not_installed"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


_HEADLINES = {
    ResticFailure.WRONG_PASSWORD: "wrong repository password (no key in the repository matches it); "
    "check the password file",
    ResticFailure.NO_REPOSITORY: "there is no restic repository at this location; initialize it "
    "or check the bucket and prefix",
    ResticFailure.LOCKED: "the repository is locked by another restic process; if none is running "
    "it is a stale lock, which `unlock` removes",
    ResticFailure.UNREACHABLE: "the storage endpoint cannot be reached; check the network and "
    "the endpoint address",
    ResticFailure.NO_SPACE: "no space left on device",
    ResticFailure.DAMAGED: "the repository check found errors",
    ResticFailure.INTERRUPTED: "restic was interrupted (exit code 130: it got SIGINT or SIGTERM "
    "and stopped before finishing)",
}

# Checked in this order: a refused connection also prints "Is there a repository ...".
_PATTERNS: list[tuple[ResticFailure, tuple[str, ...]]] = [
    (ResticFailure.LOCKED, ("repository is already locked", "unable to create lock")),
    (ResticFailure.WRONG_PASSWORD, ("wrong password", "no key found")),
    (ResticFailure.NO_SPACE, ("no space left on device",)),
    (ResticFailure.UNREACHABLE, (
        "connection refused", "no such host", "network is unreachable", "no route to host",
        "i/o timeout", "tls handshake timeout", "connection reset", "server misbehaving",
    )),
    (ResticFailure.NO_REPOSITORY, (
        "unable to open config file", "repository does not exist",
        "is there a repository at the following location", "bucket does not exist",
    )),
    (ResticFailure.DAMAGED, ("repository contains errors",)),
]

# restic >= 0.17 documents exit codes for these (doc/075_scripting.rst, "Exit codes"): 10 no
# repository, 11 lock failed, 12 wrong password (0.17.1), 130 interrupted.
_EXIT_CODES = {10: ResticFailure.NO_REPOSITORY, 11: ResticFailure.LOCKED, 12: ResticFailure.WRONG_PASSWORD,
               130: ResticFailure.INTERRUPTED}


class ResticError(Exception):
    """A restic operation failed; the message is short, names the operation and holds no secret."""

    def __init__(self, operation: str, kind: ResticFailure, message: str, returncode: int | None = None):
        super().__init__(message)
        self.operation = operation
        self.kind = kind
        self.returncode = returncode


def scrub(text: str, secrets: Sequence[str]) -> str:
    """Replace every secret value in text with ***, longest first.

    Short secrets (a test password like "pw") are replaced only as whole words, so that
    "password" stays readable; long ones wherever they occur."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        if len(secret) >= 6:
            text = text.replace(secret, "***")
        else:
            text = re.sub(rf"(?<![\w]){re.escape(secret)}(?![\w])", "***", text)
    return text


def classify(result: ProcResult) -> ResticFailure:
    stderr = result.stderr.lower()
    if result.timed_out:
        return ResticFailure.UNREACHABLE if _matches(stderr, ResticFailure.UNREACHABLE) else ResticFailure.TIMEOUT
    if result.returncode < 0:
        return ResticFailure.KILLED
    if result.returncode in _EXIT_CODES:
        return _EXIT_CODES[result.returncode]
    for kind, _ in _PATTERNS:
        if _matches(stderr, kind):
            return kind
    return ResticFailure.FAILED


def _matches(text: str, kind: ResticFailure) -> bool:
    return any(p in text for k, patterns in _PATTERNS if k == kind for p in patterns)


def error_from_result(operation: str, result: ProcResult, secrets: Sequence[str]) -> ResticError:
    kind = classify(result)
    if kind is ResticFailure.TIMEOUT:
        headline = f"timed out after {result.duration:.0f} s"
    elif kind is ResticFailure.KILLED:
        headline = f"restic was killed by {_signal_name(-result.returncode)}"
    elif kind is ResticFailure.UNREACHABLE and result.timed_out:
        headline = f"{_HEADLINES[kind]} (gave up after {result.duration:.0f} s)"
    else:
        headline = _HEADLINES.get(kind, f"restic exited with code {result.returncode}")
    said = _last_lines(result.stderr)
    message = f"restic {operation} failed: {headline}" + (f"\nrestic said: {said}" if said else "")
    return ResticError(operation, kind, scrub(message, secrets), result.returncode)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_lines(stderr: str, count: int = 3, width: int = 300) -> str:
    lines = [_readable(line) for line in stderr.splitlines() if line.strip()]
    return "\n".join(line[:width] for line in lines[-count:])


def _readable(line: str) -> str:
    """restic writes errors as JSON in --json mode; say them in words."""
    line = line.strip()
    if not line.startswith("{"):
        return line
    try:
        obj = json.loads(line)
    except ValueError:
        return line
    if not isinstance(obj, dict):
        return line
    if obj.get("message_type") == "error" or "error" in obj:
        return describe_error(obj)
    return str(obj.get("message") or line)


# The Go operations behind "could not read": os.PathError's Op for the calls the archiver makes.
_READ_OPS = {"open", "openat", "read", "readdir", "readdirent", "readlink", "lstat", "stat", "getxattr",
             "listxattr", "lgetxattr", "llistxattr"}
_GO_PATH_ERROR = re.compile(r"^(?P<op>[a-z]+) (?P<path>/.*?): (?P<reason>[^:]+)$")


def describe_error(obj: dict[str, Any]) -> str:
    """One `{"message_type": "error", …}` line of `backup --json` in words.

    restic's internal/ui/backup/json.go writes `{"error": <error>, "during", "item"}`. Up to 0.17 the
    error is the Go error value marshalled as is: `{"Op":"open","Path":"/srv/x","Err":13}` for an
    os.PathError (Err is the errno) or `{}` for most others; 0.18 writes `{"message": "open /srv/x:
    permission denied"}`. All become e.g. "could not read /srv/x: permission denied"."""
    error, item = obj.get("error"), str(obj.get("item") or "")
    during = str(obj.get("during") or "")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return _from_message(error["message"], item)
    if isinstance(error, dict) and "Op" in error:
        path = str(error.get("Path") or item)
        return f"{_verb(str(error.get('Op')))} {path}: {_reason(error.get('Err'))}"
    if isinstance(error, str) and error:
        return _from_message(error, item)
    where = f" (while {during})" if during and during != "archival" else ""
    return f"could not read {item or 'an item'}{where}; restic gave no reason"


def _from_message(message: str, item: str) -> str:
    match = _GO_PATH_ERROR.match(message.strip())
    if match:
        return f"{_verb(match['op'])} {match['path']}: {match['reason']}"
    return f"{item}: {message}" if item and item not in message else message


def _verb(op: str) -> str:
    return "could not read" if op in _READ_OPS else f"could not {op}"


def _reason(err: Any) -> str:
    if isinstance(err, int) and not isinstance(err, bool):
        try:
            return os.strerror(err).lower().rstrip(".")
        except ValueError:
            return f"error {err}"
    if isinstance(err, dict) and err:
        return _reason(err.get("Err")) if "Err" in err else json.dumps(err)
    return str(err) if err else "unknown error"


# --------------------------------------------------------------------------- the adapter

_SNAPSHOT_ID = re.compile(r"^(latest|[0-9a-f]{8,64})$")
_PIPE_CAPACITY = 4096   # the least a pipe holds: the password is written whole before restic starts
# What it means when the bot is killed during an operation, for the report at its next start.
_IF_CUT_SHORT = {
    "backup": "no snapshot was made: run the backup again",
    "restore": "the restore may be partial: run it again",
    "forget": "some old snapshots may not have been removed: run the prune again",
    "check": "the repository check did not finish: run it again",
}
_BASE_ENV = ("PATH", "HOME", "LANG", "TMPDIR")


class Restic:
    """Operations on one repository. Safe to use concurrently (restic's own locks apply)."""

    def __init__(
        self,
        repository: Repository,
        password: str | SecretStr,
        *,
        binary: str = "restic",
        cache_dir: Path | None = None,
        progress_fps: float = 2.0,
    ):
        """`password` is the repository password (read by the caller from its file); each call
        hands it to restic through a pipe, so nothing rests on disk (older versions wrote a file:
        `spbot.system.children` removes what they left)."""
        self.repository = repository
        self._password = password if isinstance(password, SecretStr) else SecretStr(password)
        self.binary = binary
        self.cache_dir = cache_dir
        self.progress_fps = progress_fps

    def __repr__(self) -> str:
        return f"Restic({self.repository.location()!r})"

    # ---- operations

    async def init(self, *, timeout: float = 120) -> bool:
        """Create the repository; False if it already exists (and the password opens it)."""
        result = await self._run("init", ["init"], timeout=timeout, check=False)
        if result.ok:
            return True
        if "already exists" in result.stderr or "already initialized" in result.stderr:
            await self._run("init", ["cat", "config"], timeout=timeout)
            return False
        raise self._error("init", result)

    async def backup(
        self,
        paths: Sequence[str | os.PathLike],
        *,
        tags: Sequence[str] = (),
        excludes: Sequence[str] = (),
        host: str | None = None,
        time: datetime | None = None,
        progress: ProgressCallback | None = None,
        timeout: float = 6 * 3600,
    ) -> BackupSummary:
        """Snapshot `paths` (absolute). `time` overrides the snapshot time (for tests and imports)."""
        args = ["backup", "--json", *_tag_flags(tags), *(f"--exclude={e}" for e in excludes)]
        if host:
            args.append(f"--host={host}")
        if time is not None:
            args.append(f"--time={_restic_time(time)}")
        args += ["--", *_absolute_paths(paths)]
        reader = _BackupReader(progress)
        result = await self._run("backup", args, timeout=timeout, on_line=reader.feed, ok_codes=(0, 3),
                                 max_stdout=64_000)
        if reader.summary is None:
            raise ResticError("backup", ResticFailure.FAILED, "restic backup failed: it printed no summary")
        summary = reader.summary
        summary.incomplete = result.returncode == 3
        summary.warnings = reader.warnings + _error_lines(result.stderr)
        return summary

    async def backup_with_stale_lock_recovery(
        self,
        paths: Sequence[str | os.PathLike],
        *,
        on_unlock: Callable[[ResticError], Awaitable[None] | None] | None = None,
        **options: Any,
    ) -> BackupSummary:
        """`backup`, but if a lock blocks it: `unlock` (removes stale locks only) and retry once."""
        return await self.with_stale_lock_recovery(lambda: self.backup(paths, **options), on_unlock=on_unlock)

    async def with_stale_lock_recovery(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        on_unlock: Callable[[ResticError], Awaitable[None] | None] | None = None,
        unlock_timeout: float = 120,
    ) -> T:
        """Run operation(); if it fails with LOCKED, remove stale locks and run it once more.

        A lock held by a live process survives `unlock`, so the retry then fails with LOCKED too."""
        try:
            return await operation()
        except ResticError as exc:
            if exc.kind is not ResticFailure.LOCKED:
                raise
            log.warning("restic %s blocked by a lock; removing stale locks and retrying", exc.operation)
            await self.unlock(timeout=unlock_timeout)
            if on_unlock is not None:
                outcome = on_unlock(exc)
                if asyncio.iscoroutine(outcome):
                    await outcome
        return await operation()

    async def snapshots(
        self,
        *,
        tags: Sequence[str] = (),
        host: str | None = None,
        timeout: float = 300,
    ) -> list[Snapshot]:
        """Snapshots oldest first; `tags` filters to snapshots carrying all of them."""
        args = ["snapshots", "--json", *_tag_filter(tags)]
        if host:
            args.append(f"--host={host}")
        result = await self._run("snapshots", args, timeout=timeout, max_stdout=64_000_000)
        return [Snapshot.model_validate(s) for s in _first_json(result.stdout, "snapshots") or []]

    async def forget(
        self,
        policy: RetentionPolicy,
        *,
        tags: Sequence[str] = (),
        host: str | None = None,
        group_by: Sequence[Literal["host", "paths", "tags"]] | None = None,
        prune: bool = True,
        dry_run: bool = False,
        timeout: float = 4 * 3600,
    ) -> ForgetResult:
        """Apply `policy` to the snapshots carrying all `tags` (others are untouched), per group
        (restic's default grouping is host and paths); then prune unreferenced data."""
        args = ["forget", "--json", *policy.flags(), *_tag_filter(tags)]
        if host:
            args.append(f"--host={host}")
        if group_by is not None:
            args.append(f"--group-by={','.join(group_by)}")
        if dry_run:
            args.append("--dry-run")
        elif prune:
            args.append("--prune")
        result = await self._run("forget", args, timeout=timeout, max_stdout=64_000_000)
        groups = _first_json(result.stdout, "forget") or []
        return ForgetResult(groups=[ForgetGroup.model_validate(g) for g in groups],
                            pruned=prune and not dry_run)

    async def forget_snapshots(self, snapshot_ids: Sequence[str], *, prune: bool = True,
                               timeout: float = 4 * 3600) -> None:
        """Remove these snapshots (full ids), then prune the data only they used."""
        if not snapshot_ids:
            return
        args = ["forget", *(["--prune"] if prune else []), "--", *map(_snapshot_id, snapshot_ids)]
        await self._run("forget", args, timeout=timeout, max_stdout=64_000_000)

    async def restore(
        self,
        snapshot_id: str,
        target: str | os.PathLike,
        *,
        include: Sequence[str] = (),
        verify: bool = False,
        timeout: float = 6 * 3600,
    ) -> None:
        """Restore into `target` (files land under target/<original absolute path>).
        `include` limits it to these paths; `verify` makes restic re-read what it wrote."""
        args = ["restore", f"--target={os.fspath(target)}", *(f"--include={p}" for p in include)]
        if verify:
            args.append("--verify")
        await self._run("restore", [*args, "--", _snapshot_id(snapshot_id)], timeout=timeout)

    async def ls(
        self,
        snapshot_id: str,
        *,
        paths: Sequence[str] = (),
        keep_nodes: bool = True,
        timeout: float = 900,
    ) -> Listing:
        """What the snapshot holds (under `paths` if given): counts, total file size, entries."""
        listing = Listing()

        def take(line: str) -> None:
            _add_to_listing(listing, line, keep_nodes)

        await self._run("ls", ["ls", "--json", "--", _snapshot_id(snapshot_id), *paths],
                        timeout=timeout, on_line=take, max_stdout=64_000)
        return listing

    async def check(self, *, read_data_subset: str | None = None, timeout: float = 4 * 3600) -> CheckResult:
        """Verify the repository structure (and a subset of the data: "5%", "1/10", "all")."""
        args = ["check"]
        if read_data_subset == "all":
            args.append("--read-data")
        elif read_data_subset:
            args.append(f"--read-data-subset={read_data_subset}")
        result = await self._run("check", args, timeout=timeout)
        return CheckResult(ok=True, output=_last_lines(result.stdout, count=5))

    async def unlock(self, *, remove_all: bool = False, timeout: float = 120) -> None:
        """Remove stale locks (left by killed processes); `remove_all` also removes live ones."""
        await self._run("unlock", ["unlock", *(["--remove-all"] if remove_all else [])], timeout=timeout)

    async def stats(
        self,
        mode: StatsMode = "restore-size",
        *,
        snapshot_ids: Sequence[str] = (),
        tags: Sequence[str] = (),
        timeout: float = 3600,
    ) -> Stats:
        args = ["stats", "--json", f"--mode={mode}", *_tag_filter(tags)]
        if snapshot_ids:
            args += ["--", *(_snapshot_id(s) for s in snapshot_ids)]
        result = await self._run("stats", args, timeout=timeout)
        return Stats.model_validate(_first_json(result.stdout, "stats") or {})

    async def dedup_report(self, *, timeout: float = 3600) -> DedupReport:
        """Restore size of all snapshots against what is stored: their ratio is the saving."""
        restore = await self.stats("restore-size", timeout=timeout)
        raw = await self.stats("raw-data", timeout=timeout)
        return DedupReport(restore_size=restore.total_size, stored_size=raw.total_size)

    # ---- plumbing

    async def _run(
        self,
        operation: str,
        args: list[str],
        *,
        timeout: float,
        on_line: LineCallback | None = None,
        ok_codes: Sequence[int] = (0,),
        check: bool = True,
        max_stdout: int = 4_000_000,
    ) -> ProcResult:
        with self._password_pipe() as fd:
            try:
                result = await run([self.binary, *args], timeout=timeout, env=self._env(fd), pass_fds=[fd],
                                   on_stdout_line=on_line, max_stdout=max_stdout,
                                   label=f"restic {operation}", if_cut_short=_IF_CUT_SHORT.get(operation, ""))
            except ProcError as exc:
                raise ResticError(operation, ResticFailure.NOT_INSTALLED, f"restic {operation} failed: {exc}")
        log.info("restic %s: exit %s in %.1f s", operation, result.returncode, result.duration)
        if check and (result.timed_out or result.returncode not in ok_codes):
            raise self._error(operation, result)
        if result.stdout_truncated:
            raise ResticError(operation, ResticFailure.FAILED,
                              f"restic {operation} failed: its output was larger than {max_stdout} bytes")
        return result

    def _error(self, operation: str, result: ProcResult) -> ResticError:
        return error_from_result(operation, result, self._secrets())

    def _secrets(self) -> list[str]:
        return [self._password.get_secret_value(), *self.repository.secrets()]

    def _env(self, password_fd: int) -> dict[str, str]:
        env = {k: os.environ[k] for k in _BASE_ENV if k in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.update(self.repository.environment())
        env["RESTIC_REPOSITORY"] = self.repository.location()
        env["RESTIC_PASSWORD_FILE"] = f"/dev/fd/{password_fd}"
        env["RESTIC_PROGRESS_FPS"] = str(self.progress_fps)
        if self.cache_dir is not None:
            env["RESTIC_CACHE_DIR"] = str(self.cache_dir)
        return env

    @contextmanager
    def _password_pipe(self) -> Iterator[int]:
        """The read end of a pipe that holds the password and then ends (restic reads it whole,
        once, at its start); closed in the bot again after the call. Nothing touches the disk."""
        data = self._password.get_secret_value().encode()
        if len(data) >= _PIPE_CAPACITY:
            raise ResticError("password", ResticFailure.FAILED,
                              f"the repository password is too long (at most {_PIPE_CAPACITY - 1} bytes)")
        read_end, write_end = os.pipe()   # both close-on-exec: only restic gets the read end
        try:
            try:
                while data:
                    data = data[os.write(write_end, data):]
            finally:
                os.close(write_end)
            if read_end < 3:   # the bot was started with stdin closed: 0..2 become restic's stdio
                read_end, low = fcntl.fcntl(read_end, fcntl.F_DUPFD_CLOEXEC, 3), read_end
                os.close(low)
            yield read_end
        finally:
            os.close(read_end)


# --------------------------------------------------------------------------- parsing helpers


class _BackupReader:
    """Reads `backup --json` lines as they come: status to the callback, the summary kept."""

    def __init__(self, progress: ProgressCallback | None):
        self.progress = progress
        self.summary: BackupSummary | None = None
        self.warnings: list[str] = []

    async def feed(self, line: str) -> None:
        obj = _json_object(line)
        kind = obj.get("message_type") if obj else None
        if kind == "status" and self.progress is not None:
            await self._report(BackupStatus.model_validate(obj))
        elif kind == "summary":
            self.summary = BackupSummary.model_validate(obj)
        elif kind == "error":
            self.warnings.append(_readable(line))

    async def _report(self, status: BackupStatus) -> None:
        # A failing progress display must not abort the backup (nor leave restic running).
        try:
            outcome = self.progress(status)
            if asyncio.iscoroutine(outcome):
                await outcome
        except Exception:
            log.exception("backup progress callback failed")


def _add_to_listing(listing: Listing, line: str, keep_nodes: bool) -> None:
    obj = _json_object(line)
    if not obj:
        return
    kind = obj.get("struct_type") or obj.get("message_type")
    if kind == "snapshot":
        listing.snapshot = Snapshot.model_validate(obj)
        return
    if kind != "node":
        return
    listing.add(Node.model_validate(obj), keep_nodes)


def verify_restored(listing: Listing, target: str | os.PathLike) -> RestoreCheck:
    """Compare a restored tree under `target` with the snapshot listing (presence, file sizes).
    Blocking: call it with asyncio.to_thread for big trees."""
    check = RestoreCheck()
    root = Path(target)
    for node in listing.nodes:
        path = root / node.path.lstrip("/")
        check.checked += 1
        if not os.path.lexists(path):
            check.missing.append(node.path)
        elif node.type == "file" and path.stat().st_size != node.size:
            check.wrong_size.append(node.path)
    return check


def _json_object(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _first_json(stdout: str, operation: str) -> Any:
    """The first JSON value in stdout; restic 0.14 prints prune's text after forget's JSON."""
    start = min((i for i in (stdout.find("["), stdout.find("{")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(stdout, start)
    except ValueError as exc:
        raise ResticError(operation, ResticFailure.FAILED,
                          f"restic {operation} failed: its JSON output could not be read ({exc.msg})") from exc
    return value


def _error_lines(stderr: str) -> list[str]:
    return [_readable(line)[:300] for line in stderr.splitlines() if line.strip()][-20:]


def _tag_flags(tags: Sequence[str]) -> list[str]:
    return [f"--tag={_valid_tag(t)}" for t in tags]


def _tag_filter(tags: Sequence[str]) -> list[str]:
    """One --tag with a comma list: restic then requires all of them."""
    return [f"--tag={','.join(_valid_tag(t) for t in tags)}"] if tags else []


def _valid_tag(tag: str) -> str:
    if not tag or "," in tag or tag != tag.strip():
        raise ValueError(f"invalid restic tag {tag!r}: non-empty, no commas, no surrounding spaces")
    return tag


def _snapshot_id(value: str) -> str:
    if not _SNAPSHOT_ID.match(value):
        raise ValueError(f"not a snapshot id: {value!r}")
    return value


def _absolute_paths(paths: Sequence[str | os.PathLike]) -> list[str]:
    if not paths:
        raise ValueError("backup needs at least one path")
    result = [os.fspath(p) for p in paths]
    for path in result:
        if not os.path.isabs(path):
            raise ValueError(f"backup paths must be absolute: {path!r}")
    return result


def _restic_time(value: datetime) -> str:
    """restic reads --time as local wall-clock time."""
    if value.tzinfo is not None:
        value = value.astimezone().replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S")
