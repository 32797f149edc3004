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

Modules: repository (where it is), results (what operations return), errors (failures in words),
arguments (checked flags), output (reading JSON output), runner (environment and password pipe),
adapter (the Restic class).
"""
from __future__ import annotations

from .adapter import Restic
from .errors import ResticError, ResticFailure, _readable, classify, describe_error, error_from_result, scrub
from .output import verify_restored
from .repository import B2Repository, LocalRepository, Repository, S3Repository
from .results import (BackupStatus, BackupSummary, CheckResult, DedupReport, ForgetGroup, ForgetResult, Listing,
                      Node, ProgressCallback, RestoreCheck, RetentionPolicy, Snapshot, Stats, StatsMode)

__all__ = [
    "B2Repository", "BackupStatus", "BackupSummary", "CheckResult", "DedupReport", "ForgetGroup", "ForgetResult",
    "Listing", "LocalRepository", "Node", "ProgressCallback", "Repository", "RestoreCheck", "Restic",
    "ResticError", "ResticFailure", "RetentionPolicy", "S3Repository", "Snapshot", "Stats", "StatsMode",
    "_readable", "classify", "describe_error", "error_from_result", "scrub", "verify_restored",
]
