"""restic's arguments from values that may come from chat: checked, so none becomes a flag."""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import datetime

_SNAPSHOT_ID = re.compile(r"^(latest|[0-9a-f]{8,64})$")


def tag_flags(tags: Sequence[str]) -> list[str]:
    return [f"--tag={valid_tag(t)}" for t in tags]


def tag_filter(tags: Sequence[str]) -> list[str]:
    """One --tag with a comma list: restic then requires all of them."""
    return [f"--tag={','.join(valid_tag(t) for t in tags)}"] if tags else []


def valid_tag(tag: str) -> str:
    if not tag or "," in tag or tag != tag.strip():
        raise ValueError(f"invalid restic tag {tag!r}: non-empty, no commas, no surrounding spaces")
    return tag


def snapshot_id_arg(value: str) -> str:
    if not _SNAPSHOT_ID.match(value):
        raise ValueError(f"not a snapshot id: {value!r}")
    return value


def absolute_paths(paths: Sequence[str | os.PathLike]) -> list[str]:
    if not paths:
        raise ValueError("backup needs at least one path")
    result = [os.fspath(p) for p in paths]
    for path in result:
        if not os.path.isabs(path):
            raise ValueError(f"backup paths must be absolute: {path!r}")
    return result


def restic_time(value: datetime) -> str:
    """restic reads --time as local wall-clock time."""
    if value.tzinfo is not None:
        value = value.astimezone().replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S")
