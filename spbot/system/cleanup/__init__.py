"""Disk clean-up steps that apply to this machine: nix GC, journal vacuum, rotated logs, apt cache, /old-root.

Each step can `estimate()` what it would free (a dry run that changes nothing) and `run()`;
a run reports the bytes freed as measured by the filesystem's free space before and after, plus
what the tool itself reported and, where files are deleted, each file with its size.

Paths and the PATH used to find tools come from `CleanupParams`, so tests point them at temporary
trees and recording executables. Deleting (spbot/system/filetree.py) walks directories by file
descriptor and never follows a symlink or leaves the filesystem of the configured directory.
"""
from __future__ import annotations

import shutil  # noqa: F401  (tests look a tool up through it, as the steps do)

from .model import CleanupParams, CleanupReport, Estimate, StepName, StepResult, parse_size
from .step import CleanupStep
from .steps import (
    STEP_TYPES, AptCache, JournalVacuum, NixGarbage, OldRoot, RotatedLogs, dry_run, run_all, steps,
)

__all__ = ["STEP_TYPES", "AptCache", "CleanupParams", "CleanupReport", "CleanupStep", "Estimate",
           "JournalVacuum", "NixGarbage", "OldRoot", "RotatedLogs", "StepName", "StepResult", "dry_run",
           "parse_size", "run_all", "steps"]
