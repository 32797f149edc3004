"""The Restic adapter: one object per repository, an async method per restic operation, each run through
`spbot.system.proc.run` (timeout, own process group, dies with the bot) and failing with a ResticError."""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import SecretStr

from spbot.system.proc import LineCallback, ProcError, ProcResult, run

from .arguments import absolute_paths, restic_time, snapshot_id_arg, tag_filter, tag_flags
from .errors import ResticError, ResticFailure, error_from_result, last_lines
from .output import BackupReader, add_to_listing, error_lines, first_json
from .repository import Repository
from .results import (BackupSummary, CheckResult, DedupReport, ForgetGroup, ForgetResult, Listing,
                      ProgressCallback, RetentionPolicy, Snapshot, Stats, StatsMode)
from .runner import IF_CUT_SHORT, environment, password_pipe

log = logging.getLogger(__package__)

T = TypeVar("T")
# What an admin waits for in chat (a listing, a lock check) keeps the bot's priority; the rest is heavy
# work (reading or writing the data) and yields to the family's services (spbot.system.priority).
QUICK_OPERATIONS = {"init", "snapshots", "unlock"}


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
        write_limit_kib: int | None = None,
    ):
        """`password` is the repository password (read by the caller from its file); each call
        hands it to restic through a pipe, so nothing rests on disk (older versions wrote a file:
        `spbot.system.children` removes what they left)."""
        self.repository = repository
        self._password = password if isinstance(password, SecretStr) else SecretStr(password)
        self.binary = binary
        self.cache_dir = cache_dir
        self.progress_fps = progress_fps
        self.write_limit_kib = write_limit_kib      # KiB/s written to the repository by heavy work

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
        args = ["backup", "--json", *tag_flags(tags), *(f"--exclude={e}" for e in excludes)]
        if host:
            args.append(f"--host={host}")
        if time is not None:
            args.append(f"--time={restic_time(time)}")
        args += ["--", *absolute_paths(paths)]
        reader = BackupReader(progress)
        result = await self._run("backup", args, timeout=timeout, on_line=reader.feed, ok_codes=(0, 3),
                                 max_stdout=64_000)
        if reader.summary is None:
            raise ResticError("backup", ResticFailure.FAILED, "restic backup failed: it printed no summary")
        summary = reader.summary
        summary.incomplete = result.returncode == 3
        summary.warnings = reader.warnings + error_lines(result.stderr)
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
        """Snapshots oldest first; `tags` filters to snapshots carrying all of them. Read without taking
        a lock: a listing changes nothing, and the lock file restic would write and delete costs a round
        trip each to a remote repository (0.1 s of a 0.4 s listing on a local one)."""
        args = ["--no-lock", "snapshots", "--json", *tag_filter(tags)]
        if host:
            args.append(f"--host={host}")
        result = await self._run("snapshots", args, timeout=timeout, max_stdout=64_000_000)
        return [Snapshot.model_validate(s) for s in first_json(result.stdout, "snapshots") or []]

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
        args = ["forget", "--json", *policy.flags(), *tag_filter(tags)]
        if host:
            args.append(f"--host={host}")
        if group_by is not None:
            args.append(f"--group-by={','.join(group_by)}")
        if dry_run:
            args.append("--dry-run")
        elif prune:
            args.append("--prune")
        result = await self._run("forget", args, timeout=timeout, max_stdout=64_000_000)
        groups = first_json(result.stdout, "forget") or []
        return ForgetResult(groups=[ForgetGroup.model_validate(g) for g in groups],
                            pruned=prune and not dry_run)

    async def forget_snapshots(self, snapshot_ids: Sequence[str], *, prune: bool = True,
                               timeout: float = 4 * 3600) -> None:
        """Remove these snapshots (full ids), then prune the data only they used."""
        if not snapshot_ids:
            return
        args = ["forget", *(["--prune"] if prune else []), "--", *map(snapshot_id_arg, snapshot_ids)]
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
        await self._run("restore", [*args, "--", snapshot_id_arg(snapshot_id)], timeout=timeout)

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
            add_to_listing(listing, line, keep_nodes)

        await self._run("ls", ["ls", "--json", "--", snapshot_id_arg(snapshot_id), *paths],
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
        return CheckResult(ok=True, output=last_lines(result.stdout, count=5))

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
        args = ["stats", "--json", f"--mode={mode}", *tag_filter(tags)]
        if snapshot_ids:
            args += ["--", *(snapshot_id_arg(s) for s in snapshot_ids)]
        result = await self._run("stats", args, timeout=timeout)
        return Stats.model_validate(first_json(result.stdout, "stats") or {})

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
        heavy = operation not in QUICK_OPERATIONS
        limit = [f"--limit-upload={self.write_limit_kib}"] if heavy and self.write_limit_kib else []
        with self._password_pipe() as fd:
            try:
                result = await run([self.binary, *limit, *args], timeout=timeout, env=self._env(fd),
                                   pass_fds=[fd], on_stdout_line=on_line, max_stdout=max_stdout,
                                   label=f"restic {operation}", if_cut_short=IF_CUT_SHORT.get(operation, ""),
                                   work="backup" if heavy else None)
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
        return environment(self.repository, password_fd, self.progress_fps, self.cache_dir)

    def _password_pipe(self):
        return password_pipe(self._password)
