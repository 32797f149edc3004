"""`spbot doctor` for upgrades: the operating system is one spbot upgrades (Debian, Ubuntu, NixOS), and
its upgrade tool is there."""
from __future__ import annotations

import shutil

from spbot.context import UserError
from spbot.feature import Check

from .machine import nixos_env, os_info
from .settings import UpgradeSettings


def check_upgrade(settings: UpgradeSettings) -> list[Check]:
    try:
        info = os_info(settings)
    except UserError as exc:
        return [Check("fail", exc.what, exc.todo)]
    if info.uses_apt:
        tool, path = settings.apt.apt_get, settings.apt.base_env().get("PATH")
    elif info.family == "nixos":
        tool, path = settings.nixos.nixos_rebuild, nixos_env(settings.nixos)["PATH"]
    else:
        return [Check("warn", f"{info.pretty_name or info.id}: !upgrade supports Debian, Ubuntu and NixOS only",
                      "upgrade this server by hand")]
    found = shutil.which(tool, path=path)
    if found is None:
        section = "apt" if info.uses_apt else "nixos"
        return [Check("fail", f"{info.pretty_name}: {tool} not found",
                      f"install it, or give its full path in [upgrade.{section}]")]
    schedule = "daily check on" if settings.check_enabled else "daily check off"
    auto = f", automatic upgrades ({settings.auto_cron})" if settings.auto_upgrade else ""
    return [Check("ok", f"{info.pretty_name}: upgrades with {found} ({schedule}{auto})")]
