"""Reading restic's output: `backup --json` lines as they come (progress, summary, warnings), `ls --json`
into a listing, the first JSON value of a command's output; and a restored tree checked against a listing."""
from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

from .errors import ResticError, ResticFailure, _readable
from .results import BackupStatus, BackupSummary, Listing, Node, ProgressCallback, RestoreCheck, Snapshot

log = logging.getLogger(__package__)


class BackupReader:
    """Reads `backup --json` lines as they come: status to the callback, the summary kept."""

    def __init__(self, progress: ProgressCallback | None):
        self.progress = progress
        self.summary: BackupSummary | None = None
        self.warnings: list[str] = []

    async def feed(self, line: str) -> None:
        obj = json_object(line)
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


def add_to_listing(listing: Listing, line: str, keep_nodes: bool) -> None:
    obj = json_object(line)
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


def json_object(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def first_json(stdout: str, operation: str) -> Any:
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


def error_lines(stderr: str) -> list[str]:
    return [_readable(line)[:300] for line in stderr.splitlines() if line.strip()][-20:]
