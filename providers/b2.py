"""Backblaze B2 for restic: a private bucket, a key that can touch only that bucket, lifecycle, usage.

    b2 = B2Provider(master_key_id, master_key)
    bucket = await b2.ensure_bucket("family-backups-3f9a", keep_deleted_days=30)
    key = await b2.create_restricted_key(bucket.name, "spbot-restic")
    repo = B2Repository(bucket=bucket.name, prefix="vps", key_id=key.key_id, key=key.key)

b2sdk is blocking, so every call runs in a thread under a timeout. Errors are B2Error: they name
Backblaze B2, say what to do, and never carry a key.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import SecretStr

from .errors import ProviderError
from .model import Model

if TYPE_CHECKING:
    from b2sdk.v2 import B2Api, B2HttpApiConfig


def _b2exc():
    """b2sdk's exceptions; b2sdk is imported on first use only (it costs the idle bot ~12 MiB)."""
    from b2sdk.v2 import exception
    return exception

T = TypeVar("T")

# What restic's b2 backend uses. Without deleteFiles, restic >= 0.17 hides files instead of
# deleting them (a compromised server then cannot destroy backups); restic 0.14 needs it.
RESTIC_CAPABILITIES = ("listBuckets", "readBuckets", "listFiles", "readFiles", "writeFiles", "deleteFiles")


class B2Error(ProviderError):
    """A Backblaze B2 call failed; the message is safe to show."""

    def __init__(self, message: str, kind: str = "failed"):
        super().__init__(message)
        self.kind = kind  # bad_key, no_permission, name_taken, not_private, no_bucket, unreachable, busy, timeout, failed


class BucketInfo(Model):
    name: str
    id: str
    created: bool  # False: it already existed in this account
    lifecycle_rules: list[dict[str, Any]] = []


class RestrictedKey(Model):
    key_id: str
    key: SecretStr  # shown once by B2; store it where restic's configuration lives
    name: str
    bucket_id: str
    bucket_name: str
    capabilities: list[str]
    name_prefix: str | None = None


class BucketUsage(Model):
    bucket: str
    file_count: int  # current (not hidden) files
    total_bytes: int  # their size
    stored_versions: int  # every stored version, hidden ones included
    stored_bytes: int  # what Backblaze bills for


def make_api(api_config: B2HttpApiConfig | None = None) -> B2Api:
    """A B2Api with in-memory credentials; tests pass B2HttpApiConfig(_raw_api_class=RawSimulator)."""
    from b2sdk.v2 import B2Api, InMemoryAccountInfo
    if api_config is None:
        return B2Api(InMemoryAccountInfo())
    return B2Api(InMemoryAccountInfo(), api_config=api_config)


class B2Provider:
    def __init__(
        self,
        key_id: str,
        key: str | SecretStr,
        *,
        api: B2Api | None = None,
        api_config: B2HttpApiConfig | None = None,
        realm: str = "production",
        timeout: float = 60,
    ):
        self.api = api if api is not None else make_api(api_config)
        self._key_id = key_id
        self._key = key if isinstance(key, SecretStr) else SecretStr(key)
        self.realm = realm
        self.timeout = timeout
        self._authorized = False

    async def ensure_bucket(self, name: str, *, keep_deleted_days: int | None = None) -> BucketInfo:
        """The private bucket `name` in this account, created if missing. Fails if the name belongs to
        another account or the bucket is not private. `keep_deleted_days` sets the lifecycle rule."""
        info = await self._call("ensure the bucket", self._ensure_bucket, name)
        if keep_deleted_days is not None:
            info.lifecycle_rules = await self.keep_deleted_files(name, keep_deleted_days)
        return info

    async def keep_deleted_files(self, bucket_name: str, days: int, *, prefix: str = "") -> list[dict[str, Any]]:
        """Keep hidden (deleted) file versions under `prefix` for `days` days, then delete them.
        Rules for other prefixes are left as they are. Returns the bucket's rules."""
        if days < 1:
            raise ValueError("days must be at least 1")
        return await self._call("set the lifecycle rules", self._set_lifecycle, bucket_name, days, prefix)

    async def create_restricted_key(
        self,
        bucket_name: str,
        key_name: str,
        *,
        name_prefix: str | None = None,
        allow_delete: bool = True,
        valid_seconds: int | None = None,
    ) -> RestrictedKey:
        """A key that can use only `bucket_name` (and only `name_prefix` in it, if given), with the
        capabilities restic needs; `allow_delete=False` leaves out deleteFiles (hide-only)."""
        capabilities = [c for c in RESTIC_CAPABILITIES if allow_delete or c != "deleteFiles"]
        return await self._call("create an application key", self._create_key, bucket_name, key_name,
                                capabilities, name_prefix, valid_seconds)

    async def s3_endpoint(self) -> str:
        """The account's S3-compatible endpoint (b2_authorize_account's `s3ApiUrl`), which restic uses."""
        return await self._call("read the S3 endpoint", self.api.account_info.get_s3_api_url)

    async def usage(self, bucket_name: str) -> BucketUsage:
        """Bytes and files in the bucket (lists every file version: one call per 10,000)."""
        return await self._call("read the bucket usage", self._usage, bucket_name)

    # ---- blocking parts, run in a thread

    def _authorize(self) -> None:
        if not self._authorized:
            self.api.authorize_account(self.realm, self._key_id, self._key.get_secret_value())
            self._authorized = True

    def _ensure_bucket(self, name: str) -> BucketInfo:
        bucket = self._own_bucket(name)
        created = bucket is None
        if bucket is None:
            bucket = self.api.create_bucket(name, "allPrivate")
        if bucket.type_ != "allPrivate":
            raise B2Error(f"Backblaze B2 bucket '{name}' exists but is {bucket.type_}, not private; make it "
                          "private in the Backblaze web console or choose another name", "not_private")
        return BucketInfo(name=bucket.name, id=bucket.id_, created=created,
                          lifecycle_rules=list(bucket.lifecycle_rules))

    def _own_bucket(self, name: str):
        """This account's bucket `name`, or None. b2_list_buckets only ever lists the account's own
        buckets; a name taken by another account shows when create_bucket answers
        duplicate_bucket_name (see _explain)."""
        buckets = self.api.list_buckets(bucket_name=name)
        return buckets[0] if buckets else None

    def _set_lifecycle(self, bucket_name: str, days: int, prefix: str) -> list[dict[str, Any]]:
        bucket = self.api.get_bucket_by_name(bucket_name)
        rule = {"fileNamePrefix": prefix, "daysFromHidingToDeleting": days, "daysFromUploadingToHiding": None}
        rules = [r for r in bucket.lifecycle_rules if r.get("fileNamePrefix", "") != prefix] + [rule]
        if _same_rules(rules, bucket.lifecycle_rules):
            return list(bucket.lifecycle_rules)
        return list(bucket.update(lifecycle_rules=rules).lifecycle_rules)

    def _create_key(self, bucket_name: str, key_name: str, capabilities: list[str],
                    name_prefix: str | None, valid_seconds: int | None) -> RestrictedKey:
        bucket = self.api.get_bucket_by_name(bucket_name)
        created = self.api.create_key(capabilities, key_name, valid_duration_seconds=valid_seconds,
                                      bucket_id=bucket.id_, name_prefix=name_prefix)
        return RestrictedKey(key_id=created.id_, key=SecretStr(created.application_key), name=key_name,
                             bucket_id=bucket.id_, bucket_name=bucket.name,
                             capabilities=sorted(created.capabilities), name_prefix=created.name_prefix)

    def _usage(self, bucket_name: str) -> BucketUsage:
        bucket = self.api.get_bucket_by_name(bucket_name)
        usage = BucketUsage(bucket=bucket_name, file_count=0, total_bytes=0, stored_versions=0, stored_bytes=0)
        seen: set[str] = set()
        # Versions of one name come newest first: the first one seen says if the file is current.
        for version, _ in bucket.ls(recursive=True, latest_only=False):
            latest = version.file_name not in seen
            seen.add(version.file_name)
            if version.action != "upload":
                continue
            usage.stored_versions += 1
            usage.stored_bytes += version.size or 0
            if latest:
                usage.file_count += 1
                usage.total_bytes += version.size or 0
        return usage

    # ---- threading, timeout and errors

    async def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        def authorized_call() -> T:
            self._authorize()
            return fn(*args)

        try:
            return await asyncio.wait_for(asyncio.to_thread(authorized_call), self.timeout)
        except TimeoutError:
            # The thread finishes on its own (b2sdk has its own HTTP timeouts); we stop waiting.
            raise B2Error(f"Backblaze B2 did not answer in {self.timeout:.0f} s while trying to {what}; "
                          "try again later", "timeout") from None
        except B2Error:
            raise
        except _b2exc().B2Error as exc:
            raise self._explain(what, exc, args) from None

    def _explain(self, what: str, exc: Any, args: tuple) -> B2Error:
        error = _explain(what, exc, self._authorized, str(args[0]) if args else "")
        return B2Error(_scrub(str(error), [self._key.get_secret_value(), self._key_id]), error.kind)


def _explain(what: str, exc: Any, authorized: bool, bucket: str) -> B2Error:
    b2exc = _b2exc()
    if isinstance(exc, b2exc.DuplicateBucketName):
        return _name_taken(bucket)
    if isinstance(exc, (b2exc.InvalidAuthToken, b2exc.Unauthorized)) and not authorized:
        return B2Error("Backblaze B2 rejected the application key (wrong key id or key, or the key was "
                       "deleted); create a new key in the Backblaze web console and update the bot's "
                       "settings", "bad_key")
    if isinstance(exc, (b2exc.RestrictedBucket, b2exc.Unauthorized, b2exc.AccessDenied,
                        b2exc.NotAllowedByAppKeyError)):
        return B2Error(f"Backblaze B2 refused to {what}: the application key lacks the permission "
                       "(setting up needs a master key or one with writeBuckets and writeKeys)", "no_permission")
    if isinstance(exc, (b2exc.NonExistentBucket, b2exc.BucketIdNotFound)):
        return B2Error(f"Backblaze B2 bucket '{bucket}' does not exist in this account", "no_bucket")
    if isinstance(exc, (b2exc.B2ConnectionError, b2exc.B2RequestTimeout, b2exc.UnknownHost,
                        b2exc.ConnectionReset)):
        return B2Error(f"cannot reach Backblaze B2 to {what}; check the server's network and try again",
                       "unreachable")
    if isinstance(exc, b2exc.CapExceeded):
        return B2Error(f"Backblaze B2 refused to {what}: the account's cap is reached; raise it in the "
                       "Backblaze web console (Caps & Alerts)", "busy")
    if isinstance(exc, (b2exc.TooManyRequests, b2exc.ServiceError)):
        return B2Error(f"Backblaze B2 is busy or unavailable and could not {what}; try again later", "busy")
    return B2Error(f"Backblaze B2 could not {what}: {str(exc)[:200]}")


def _name_taken(name: str) -> B2Error:
    return B2Error(f"Backblaze B2 bucket name '{name}' is taken by another account (bucket names are global); "
                   "choose another name", "name_taken")


def _same_rules(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    def key(rules: list[dict[str, Any]]) -> list[tuple]:
        return sorted(tuple(sorted((k, v) for k, v in r.items() if v is not None)) for r in rules)
    return key(a) == key(b)


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
