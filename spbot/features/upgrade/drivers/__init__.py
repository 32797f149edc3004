"""The upgrade drivers: what talks to apt-get (apt.py) and to nixos-rebuild, nix-env and nix (nixos.py),
and systemctl for the reboot (systemctl.py). A driver checks what is pending, upgrades while streaming
the tool's output line by line to a callback, and says whether a reboot is needed. Tool names and
paths come from a small params object so tests can point them at recording fakes. Every failure is
an `UpgradeError` (errors.py) whose message is safe to show in chat and whose `tail` holds the last
log lines.
"""
from __future__ import annotations

from spbot.system.osinfo import OsInfo

from .apt import AptDriver, AptParams
from .errors import UnsupportedSystem
from .nixos import NixosDriver, NixosParams


def driver_for(os_info: OsInfo, apt: AptParams | None = None,
               nixos: NixosParams | None = None) -> AptDriver | NixosDriver:
    """The upgrade driver for this OS; UnsupportedSystem for anything but Debian, Ubuntu and NixOS."""
    if os_info.family in ("debian", "ubuntu"):
        return AptDriver(apt, family=os_info.family)
    if os_info.family == "nixos":
        return NixosDriver(nixos)
    raise UnsupportedSystem(f"system upgrades are not supported on {os_info.pretty_name or 'this system'}"
                            " (only Debian, Ubuntu and NixOS)")
