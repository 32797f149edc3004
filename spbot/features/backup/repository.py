"""The repository and its keys: the restic repository [backup.repository] names, the password file, the
B2 key file, secrets read with a clear error, private files written 0600, the repository's location
without secrets, and whether it lives on this server (or on the very disk it protects)."""
from __future__ import annotations

import json
import secrets
from pathlib import Path

from spbot.config import ConfigError, Secret
from spbot.context import UserError
from spbot.logs import get_logger, register_secret
from spbot.system.private_files import read_secret_line, write_private
from spbot.system.restic import B2Repository, LocalRepository, Repository, Restic, S3Repository, scrub

from .settings import B2RepositorySettings, BackupSettings, LocalRepositorySettings, S3RepositorySettings

log = get_logger(__name__)


def repository_of(settings: BackupSettings, state_dir: Path) -> Repository:
    repo = settings.repository
    if isinstance(repo, LocalRepositorySettings):
        return LocalRepository(path=repo.path or state_dir / "restic-repo")
    if isinstance(repo, S3RepositorySettings):
        return S3Repository(endpoint=repo.endpoint, bucket=repo.bucket, prefix=repo.prefix,
                            region=repo.region, access_key_id=repo.access_key_id,
                            secret_access_key=read_secret(repo.secret_access_key, "S3 secret key"))
    key = read_b2_key(b2_key_file(settings, state_dir))
    endpoint = repo.endpoint or key.get("s3_endpoint")
    if not endpoint:
        raise UserError("the B2 key was made before spbot used B2's S3-compatible API, so its S3 endpoint is "
                        "not known (the repository itself stays as it is)",
                        "run !backup setup b2 once more, or set endpoint = \"https://s3.<region>.backblazeb2.com\" "
                        "under [backup.repository]")
    return B2Repository(bucket=repo.bucket, prefix=repo.prefix, key_id=key["key_id"], key=key["key"],
                        endpoint=endpoint)


def b2_key_file(settings: BackupSettings, state_dir: Path) -> Path:
    repo = settings.repository
    if isinstance(repo, B2RepositorySettings) and repo.key_file is not None:
        return repo.key_file
    return state_dir / "b2-restic-key.json"


def read_b2_key(path: Path) -> dict[str, str]:
    try:
        key = json.loads(path.read_text())
        register_secret(str(key["key"]))
        return {"key_id": str(key["key_id"]), "key": str(key["key"]),
                "s3_endpoint": str(key.get("s3_endpoint") or "")}
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"the Backblaze B2 key for restic is missing or unreadable ({path})",
                        "run !backup setup b2 to create it") from None


def password_path(settings: BackupSettings, state_dir: Path) -> Path | None:
    secret = settings.password
    if secret is None:
        return state_dir / "restic-password"
    return secret.file


def read_password(settings: BackupSettings, state_dir: Path, *, create: bool = False) -> str:
    secret = settings.password
    if secret is not None and secret.env is not None:
        return read_secret(secret, "repository password")
    path = password_path(settings, state_dir)
    if create and not path.exists():
        write_private(path, secrets.token_urlsafe(32) + "\n")
        log.warning("backup_password_created", path=str(path))
    try:
        password = read_secret_line(path)
    except (OSError, IndexError):
        raise UserError(f"the repository password file {path} is missing or empty",
                        "run !backup setup init to create a new repository and its password, or put "
                        "the existing password in that file (mode 0600)") from None
    if not password:
        raise UserError(f"the repository password file {path} is empty", "put the password in it")
    return password


def read_secret(secret: Secret, what: str) -> str:
    try:
        return secret.read()
    except ConfigError as exc:
        raise UserError(f"the {what} cannot be read: {exc.problems[0]}", "fix the file or variable in [backup]") from None


def safe_location(restic: Restic) -> str:
    return scrub(restic.repository.location(), restic.repository.secrets())


def same_disk_warning(settings: BackupSettings, state_dir: Path) -> str | None:
    """A sentence when the repository is a folder on this server (worse: on the same disk as the
    data), unless the admin said so in the config ([backup] same_disk_ok = true)."""
    repo = settings.repository
    if not isinstance(repo, LocalRepositorySettings) or settings.same_disk_ok:
        return None
    path = repo.path or state_dir / "restic-repo"
    data = [p for spec in settings.services.values() for p in spec.paths]
    where = ("on the same disk as the data it protects" if any(_same_device(path, p) for p in data)
             else "on this server")
    return (f"⚠️ The backups are in {path}, {where}: a failed disk, a deleted server or ransomware takes "
            "the data and its backups together. Set up an off-site copy (!backup setup b2 for Backblaze "
            "B2, or an S3 repository), or write same_disk_ok = true under [backup] if that is what you "
            "want.")


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
