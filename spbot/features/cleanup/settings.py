"""[cleanup]: which clean-up steps, where the logs and caches are, and the tools' limits."""
from __future__ import annotations

from pydantic import ConfigDict, Field

from spbot.config import Duration, config_section
from spbot.system.cleanup import CleanupParams


@config_section("cleanup")
class CleanupSettings(CleanupParams):
    """[cleanup]: which steps, where the logs and caches are, and the tools' limits."""
    model_config = ConfigDict(extra="forbid")
    timeout: Duration = Field(600.0, description="How long one step may take.")
    nix_timeout: Duration = Field(3600.0, description="How long the nix garbage collection may take.")
