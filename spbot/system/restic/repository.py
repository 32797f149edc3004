"""Where a restic repository is: its RESTIC_REPOSITORY value, the credentials restic reads from its
environment, and the values no message may show."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator
from spbot.model import Model

class _Repository(Model):
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
