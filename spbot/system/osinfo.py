"""Which operating system this is, from os-release: enough to pick the upgrade driver."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Literal

from spbot.model import Model

Family = Literal["debian", "ubuntu", "nixos", "other"]

OS_RELEASE_PATHS = (Path("/etc/os-release"), Path("/usr/lib/os-release"))
_KNOWN: tuple[Family, ...] = ("nixos", "ubuntu", "debian")


class OsInfo(Model):
    family: Family
    id: str = ""
    name: str = ""
    pretty_name: str = ""
    version_id: str = ""
    version: str = ""
    codename: str = ""

    @property
    def uses_apt(self) -> bool:
        return self.family in ("debian", "ubuntu")


class OsInfoError(Exception):
    """os-release could not be read; the message is safe to show."""


def parse_os_release(text: str) -> OsInfo:
    """Parse os-release text (shell-style KEY=value lines, quotes allowed) into an OsInfo."""
    fields = _fields(text)
    os_id = fields.get("ID", "").lower()
    return OsInfo(
        family=_family(os_id, fields.get("ID_LIKE", "")),
        id=os_id,
        name=fields.get("NAME", ""),
        pretty_name=fields.get("PRETTY_NAME") or fields.get("NAME", "") or os_id,
        version_id=fields.get("VERSION_ID", ""),
        version=fields.get("VERSION", ""),
        codename=fields.get("VERSION_CODENAME", ""),
    )


def read_os_info(path: Path | str | None = None) -> OsInfo:
    """Read os-release from `path`, or from /etc/os-release then /usr/lib/os-release."""
    candidates = [Path(path)] if path is not None else list(OS_RELEASE_PATHS)
    for candidate in candidates:
        try:
            return parse_os_release(candidate.read_text(encoding="utf-8", errors="replace"))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise OsInfoError(f"cannot read {candidate}: {exc.strerror}") from exc
    raise OsInfoError(f"no os-release file found (looked at {', '.join(map(str, candidates))})")


def _fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        fields[key.strip()] = _unquote(raw.strip())
    return fields


def _unquote(raw: str) -> str:
    try:
        parts = shlex.split(raw)
    except ValueError:
        return raw.strip("\"'")
    return " ".join(parts)


def _family(os_id: str, id_like: str) -> Family:
    if os_id in _KNOWN:
        return os_id  # type: ignore[return-value]
    likes = id_like.lower().split()
    for family in _KNOWN:
        if family in likes:
            return family
    return "other"
