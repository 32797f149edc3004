"""Backups of the server's services with restic (issue 6), as one feature.

Each configured service is backed up as its own snapshot, tagged `service:<name>` and
`reason:manual|auto|pre-restore`. Around that: live progress, one row per finished run in the bot's
database, retention of automatic snapshots, a watchdog, a daily digest, a restore drill, and restores
that verify the restored data before anything live is replaced.

Modules: settings ([backup]), model (outcomes and reports), runlog (the run log), repository (where the
repository is, its password and keys), service (Backups: backing up, the entry point to the rest),
snapshots, retention, restore and restore_files, drill, setup, render (chat text), alerting, schedule,
feature (BackupFeature). The chat surface is spbot/commands/backup.py; restic itself is
spbot/system/restic/.
"""
from __future__ import annotations

from .feature import BackupFeature
from .model import (B2Setup, DrillResult, Outcome, Progress, RestoreReport, RetentionReport, StatsReport, Stopper,
                    reason_of, service_of)
from .render import (local_time, render_b2_setup, render_digest, render_drill, render_forget,
                     render_forgotten, render_list, render_restore, render_setup, render_stats, reply_for)
from .restore_files import restic_pattern
from .service import Backups
from .settings import BackupSettings, ServiceSettings

__all__ = [
    "B2Setup", "BackupFeature", "BackupSettings", "Backups", "DrillResult", "Outcome", "Progress",
    "RestoreReport", "RetentionReport", "ServiceSettings", "StatsReport", "Stopper", "local_time", "reason_of",
    "render_b2_setup", "render_digest", "render_drill", "render_forget", "render_forgotten", "render_list",
    "render_restore", "render_setup", "render_stats", "reply_for", "restic_pattern", "service_of",
]
