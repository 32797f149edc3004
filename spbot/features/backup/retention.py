"""Retention: which snapshots are kept per service and reason, and removing one snapshot for good."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from spbot.system.restic import ForgetGroup, ForgetResult, Restic, ResticError, RetentionPolicy, Snapshot

from .model import RetentionReport, restic_user_error

if TYPE_CHECKING:
    from .service import Backups


async def forget(backups: "Backups", *, dry_run: bool = False) -> RetentionReport:
    """Retention per service (host and tags): the quotas for automatic snapshots, the last
    `keep_manual` manual ones, pre-restore ones for `keep_pre_restore_days`. Unused data is
    pruned once, at the end."""
    settings = backups.settings
    restic = backups.restic()
    manual_policy = RetentionPolicy(keep_last=settings.keep_manual)

    async def apply() -> RetentionReport:
        old = await _old_pre_restore(backups, restic)
        if not dry_run:
            await restic.forget_snapshots([s.id for s in old], prune=False)
        manual = await restic.forget(manual_policy, tags=["reason:manual"], group_by=("host", "tags"),
                                     prune=False, dry_run=dry_run)
        auto = await restic.forget(settings.retention, tags=["reason:auto"],
                                   group_by=("host", "tags"), dry_run=dry_run)
        kept = [s for s in await restic.snapshots(tags=["reason:pre-restore"]) if s not in old] \
            if not dry_run else []
        pre = ForgetResult(groups=[ForgetGroup(keep=kept, remove=old)], pruned=auto.pruned)
        return RetentionReport(auto=auto, manual=manual, pre_restore=pre,
                               keep_manual=settings.keep_manual,
                               keep_pre_restore_days=settings.keep_pre_restore_days)
    try:
        return await restic.with_stale_lock_recovery(apply)
    except ResticError as exc:
        raise restic_user_error(exc, backups) from None


async def _old_pre_restore(backups: "Backups", restic: Restic) -> list[Snapshot]:
    cutoff = time.time() - backups.settings.keep_pre_restore_days * 86400
    return [s for s in await restic.snapshots(tags=["reason:pre-restore"]) if s.time.timestamp() < cutoff]


async def forget_snapshot(backups: "Backups", ref: str) -> tuple[Snapshot, str]:
    """Remove one snapshot (any reason) and prune the data only it used; returns it and its service."""
    restic = backups.restic()
    snapshot, name = await backups.find_snapshot(ref, None, restic)
    try:
        await restic.with_stale_lock_recovery(lambda: restic.forget_snapshots([snapshot.id]))
    except ResticError as exc:
        raise restic_user_error(exc, backups) from None
    return snapshot, name
