"""Set-up: Backblaze B2 prepared (bucket, lifecycle rule, a key for that bucket only, stored 0600), and
the set-up checked line by line for `!backup setup` and `spbot doctor`."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from spbot.context import UserError
from spbot.providers.b2 import B2Error
from spbot.system.restic import ResticError

from .model import B2Setup, advice
from .repository import read_secret, safe_location, write_private
from .settings import B2RepositorySettings, BackupSettings

if TYPE_CHECKING:
    from .service import Backups


async def setup_b2(backups: "Backups", bucket: str | None = None) -> B2Setup:
    """Create (or adopt) the private bucket, set the keep-deleted-days lifecycle rule, create a key that
    can use only that bucket and store it 0600 where restic's repository settings read it."""
    b2 = backups.settings.b2
    repo = backups.settings.repository
    bucket = bucket or (repo.bucket if isinstance(repo, B2RepositorySettings) else None)
    if not bucket:
        raise UserError("which bucket?", "give its name: !backup setup b2 <bucket>, or set [backup.repository] "
                        "kind = \"b2\" and bucket = \"...\"")
    if not b2.master_key_id or b2.master_key is None:
        raise UserError("the Backblaze B2 account key is not configured",
                        "put master_key_id and master_key = {file = \"...\"} in [backup.b2] (a key with "
                        "writeBuckets and writeKeys), restart the bot and try again")
    provider = backups.b2_provider(b2.master_key_id, SecretStr(read_secret(b2.master_key, "B2 account key")))
    try:
        info = await provider.ensure_bucket(bucket, keep_deleted_days=b2.keep_deleted_days)
        key = await provider.create_restricted_key(bucket, b2.key_name)
        endpoint = await provider.s3_endpoint()
    except B2Error as exc:
        raise UserError(str(exc), "fix that and run !backup setup b2 again") from None
    key_file = backups.b2_key_file()
    write_private(key_file, json.dumps({"key_id": key.key_id, "key": key.key.get_secret_value(),
                                        "bucket": bucket, "name": key.name, "created": time.time(),
                                        "s3_endpoint": endpoint}) + "\n")
    return B2Setup(bucket, info.created, b2.keep_deleted_days, key.name, key.key_id, key.capabilities, key_file)


async def check_setup(backups: "Backups") -> list[tuple[str, str]]:
    """(mark, text) lines: `ok`, `warn` or `fail`; for `!backup setup` and `spbot doctor`."""
    lines: list[tuple[str, str]] = []
    restic_path = shutil.which(backups.settings.restic)
    if restic_path is None:
        return [("fail", f"restic is not installed ({backups.settings.restic} not found): apt-get install restic")]
    lines.append(("ok", f"restic found at {restic_path}"))
    lines += _password_file_lines(backups)
    if lines[-1][0] == "fail":          # without the password the repository cannot be opened: said once
        return lines + _service_lines(backups.settings)
    try:
        restic = backups.restic()
    except UserError as exc:
        return lines + [("fail", f"{exc.what}: {exc.todo}")]
    try:
        found = await restic.snapshots(timeout=60)
        lines.append(("ok", f"repository {safe_location(restic)} opens ({len(found)} snapshots)"))
    except ResticError as exc:
        lines.append(("fail", f"repository {safe_location(restic)}: {exc.args[0].splitlines()[0]} — "
                              f"{advice(exc.kind, backups)}"))
    lines += _service_lines(backups.settings)
    if isinstance(backups.settings.repository, B2RepositorySettings):
        mode = _mode(backups.b2_key_file())
        lines.append(("ok", f"B2 key file {backups.b2_key_file()} (mode {mode:o})") if mode == 0o600 else
                     ("fail", f"B2 key file {backups.b2_key_file()} is missing or not 0600: run !backup setup b2"))
    return lines


def _mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return None


def _password_file_lines(backups: "Backups") -> list[tuple[str, str]]:
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
