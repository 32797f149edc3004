"""The clean-up feature: its [cleanup] settings and the steps that apply to this machine (the steps
themselves are machine helpers in spbot/system/cleanup/)."""
from __future__ import annotations

from typing import Awaitable, Callable

from spbot.feature import Feature
from spbot.system import cleanup
from spbot.system.cleanup import CleanupReport, CleanupStep, Estimate

from .settings import CleanupSettings


class CleanupFeature(Feature):
    name = "cleanup"
    settings_model = CleanupSettings
    settings: CleanupSettings

    def steps(self) -> list[CleanupStep]:
        return cleanup.steps(self.settings)

    async def dry_run(self) -> list[Estimate]:
        return await cleanup.dry_run(self.settings)

    async def run(self, on_step: Callable[[CleanupStep], Awaitable[None]]) -> CleanupReport:
        """Every step that applies, in order; a failed step is reported and the others still run."""
        return await cleanup.run_all(self.settings, on_step)
