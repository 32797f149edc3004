"""The machine's reboot: `systemctl reboot`."""
from __future__ import annotations

from pydantic import Field

from .errors import UpgradeError
from .tools import ToolParams, output_lines, run_tool


class RebootParams(ToolParams):
    systemctl: str = Field("systemctl", description="The systemctl program (systemctl reboot).")
    timeout: float = Field(60.0, description="Seconds systemctl reboot may take to answer.")


async def reboot(params: RebootParams | None = None) -> None:
    """`systemctl reboot`. The bot goes down with the machine: say so in chat before calling this."""
    p = params or RebootParams()
    result = await run_tool([p.systemctl, "reboot"], "systemctl reboot", p.timeout, p.base_env())
    if result.returncode != 0:
        raise UpgradeError(f"reboot was refused (exit code {result.returncode})", output_lines(result.tail()))
