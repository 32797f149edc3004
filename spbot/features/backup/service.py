"""The Backups service: each configured service backed up as its own restic snapshot, tagged
`service:<name>` and `reason:manual|auto|pre-restore`, with live progress and one row per finished run in
the bot's database. Reading, retention, restore, the drill and set-up live in their own modules; this
class is their one entry point. No chat and no alerts here (see feature.py and alerting.py).

    backups = Backups(settings, state_dir, store)
    outcomes = await backups.run(["nextcloud"], reason="manual", progress=show)
    report = await backups.restore_into_place("1a2b3c4d", "nextcloud", progress=show)

The repository password stays in a 0600 file: restic gets it through the adapter's pipe, never
through argv, chat or logs.
"""
from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from spbot.context import UserError
from spbot.logs import get_logger
from spbot.providers.b2 import B2Provider
from spbot.system.proc import ProcError, run
from spbot.system.restic import (BackupStatus, BackupSummary, Repository, Restic, ResticError, ResticFailure,
                                 Snapshot, scrub)

from . import databases, drill, restore, retention, setup, snapshots
from . import repository as where
from .model import (REASONS, B2Setup, DrillResult, Outcome, Progress, RestoreReport, RetentionReport,
                    StatsReport, Stopper, advice, restic_user_error)
from .render import status_line
from .runlog import RunLog
from .settings import BackupSettings, LocalRepositorySettings, ServiceSettings

if TYPE_CHECKING:
    from spbot.store import Store

log = get_logger(__name__)


class Backups:
    """Backups of the configured services into one restic repository. No chat, no alerts here."""

    def __init__(self, settings: BackupSettings, state_dir: Path, store: "Store | None", *,
                 b2_provider: Callable[[str, str | SecretStr], B2Provider] | None = None):
        self.settings = settings
        self.state_dir = Path(state_dir)
        self.log = RunLog(store)
        self.secrets: list[str] = []   # what no message may show: the password and repository keys
        self.b2_provider = b2_provider or (lambda key_id, key: B2Provider(key_id, key))
        # Services another feature defines (the service catalogue), and their checks after a restore.
        self.extra: dict[str, ServiceSettings] = {}
        self.after_restore: dict[str, Callable[[], Awaitable[str]]] = {}
        self.stoppers: dict[str, Stopper] = {}     # services without units: how a restore stops them
        # Cleared while what a stop of the bot left undone is being finished (recovery.py): a backup or
        # restore waits (e.g. the nightly one that the scheduler runs late, at the restart after a crash).
        self.recovered = asyncio.Event()
        self.recovered.set()

    @property
    def services(self) -> dict[str, ServiceSettings]:
        """Every service backed up: [backup.services.<name>] and those another feature added (the config's
        own table wins when both name one)."""
        return {**self.extra, **self.settings.services}

    def dump_dir(self, name: str) -> Path:
        """Where a service's database dump is written for its snapshot (and restored from)."""
        return self.state_dir / "dumps" / name

    # ---- repository and password (repository.py)

    def password_path(self) -> Path | None:
        return where.password_path(self.settings, self.state_dir)

    def repository(self) -> Repository:
        return where.repository_of(self.settings, self.state_dir)

    def b2_key_file(self) -> Path:
        return where.b2_key_file(self.settings, self.state_dir)

    def b2_key(self) -> dict[str, str]:
        return where.read_b2_key(self.b2_key_file())

    def read_password(self, *, create: bool = False) -> str:
        return where.read_password(self.settings, self.state_dir, create=create)

    def same_disk_warning(self) -> str | None:
        return where.same_disk_warning(self.settings, self.state_dir)

    def restic(self, *, create_password: bool = False) -> Restic:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        repository, password = self.repository(), self.read_password(create=create_password)
        self.secrets = [password, *repository.secrets()]
        return Restic(repository, password, binary=self.settings.restic, cache_dir=self.settings.cache_dir or self.state_dir / "restic-cache",
                      progress_fps=self.settings.progress_fps, write_limit_kib=self.settings.write_limit)

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
            raise restic_user_error(exc, self) from None
        warning = self.same_disk_warning()
        if not created:
            text = f"the repository at {where.safe_location(restic)} already exists and the password opens it"
            return text + (f"\n{warning}" if warning else "")
        text = f"created a new restic repository at {where.safe_location(restic)}"
        if created_password:
            text += (f"; its password is in {self.password_path()} — keep a copy of that file somewhere off "
                     "this server: without it the backups cannot be read")
        return text + (f"\n{warning}" if warning else "")

    # ---- services

    def select(self, names: Sequence[str]) -> list[tuple[str, ServiceSettings]]:
        services = self.services
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
        await self.recovered.wait()
        outcome = Outcome(name, reason)
        label = f"{name} ({index}/{count})" if count > 1 else name
        if spec.post:       # even if the bot is killed before they run (recovery.py runs them then)
            await self.log.owe(f"post:{name}", {"kind": "post", "service": name, "since": time.time()})
        try:
            if await self._commands("pre", label, spec.pre, outcome, progress) and \
                    await self._dump(name, spec, label, outcome, progress):
                if spec.database is not None:
                    paths = [*(paths or spec.paths), self.dump_dir(name)]
                await self._snapshot(restic, name, spec, reason, label, progress, outcome, paths)
        finally:
            if spec.database is not None:
                await asyncio.to_thread(shutil.rmtree, self.dump_dir(name), True)
            # Even when cancelled: a post command may restart what a pre command stopped.
            await self.post_commands(name, spec, outcome, label, progress)
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
                outcome.notes.append(f"created the repository at {where.safe_location(restic)}; its password is in "
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

    async def _dump(self, name: str, spec: ServiceSettings, label: str, outcome: Outcome,
                    progress: Progress | None) -> bool:
        """The service's consistent database dump into its dump directory; False (and the outcome failed)
        when it cannot be made: a snapshot without its database is no backup of the service."""
        if spec.database is None:
            return True
        if progress is not None:
            await progress(f"{label}: dumping the {spec.database.describe()}", None)
        try:
            await databases.dump(spec.database, self.dump_dir(name), self.settings.command_timeout)
        except databases.DatabaseError as exc:
            outcome.fail(f"the database dump failed, so no snapshot was made: {scrub(str(exc), self.secrets)}",
                         "check that the database runs and that the dump tool is installed, then run "
                         "!backup now again")
            return False
        return True

    async def post_commands(self, name: str, spec: ServiceSettings, outcome: Outcome, label: str | None = None,
                            progress: Progress | None = None) -> bool:
        """The service's post commands; then they are no longer owed. False if one failed."""
        warned = len(outcome.warnings)
        await self._commands("post", label or name, spec.post, outcome, progress)
        if spec.post:
            await self.log.paid(f"post:{name}")
        return len(outcome.warnings) == warned

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

    # ---- reading the repository (snapshots.py)

    async def snapshots(self, service: str | None = None, restic: Restic | None = None) -> list[Snapshot]:
        return await snapshots.of_service(self, service, restic)

    async def find_snapshot(self, ref: str, service: str | None, restic: Restic) -> tuple[Snapshot, str]:
        return await snapshots.find(self, ref, service, restic)

    async def snapshot_sizes(self, found: Sequence[Snapshot], restic: Restic, limit: int = 10) -> dict[str, int]:
        return await snapshots.sizes(self, found, restic, limit)

    async def stats(self) -> StatsReport:
        return await snapshots.stats(self)

    # ---- retention (retention.py)

    async def forget(self, *, dry_run: bool = False) -> RetentionReport:
        return await retention.forget(self, dry_run=dry_run)

    async def forget_snapshot(self, ref: str) -> tuple[Snapshot, str]:
        return await retention.forget_snapshot(self, ref)

    # ---- restore (restore.py)

    async def restore_into_place(self, ref: str, service: str | None,
                                 progress: Progress | None = None) -> RestoreReport:
        await self.recovered.wait()
        return await restore.into_place(self, ref, service, progress)

    async def restore_to(self, ref: str, service: str | None, target: Path,
                         progress: Progress | None = None) -> RestoreReport:
        return await restore.to(self, ref, service, target, progress)

    async def restore_all_to(self, target: Path, progress: Progress | None = None) -> list[RestoreReport]:
        return await restore.all_to(self, target, progress)

    # ---- drill and set-up (drill.py, setup.py)

    async def drill(self, names: Sequence[str] = ()) -> list[DrillResult]:
        return await drill.run(self, names)

    async def setup_b2(self, bucket: str | None = None) -> B2Setup:
        return await setup.setup_b2(self, bucket)

    async def check_setup(self) -> list[tuple[str, str]]:
        return await setup.check_setup(self)
