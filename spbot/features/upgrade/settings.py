"""The [upgrade] settings, with [upgrade.apt], [upgrade.nixos] and [upgrade.reboot] for the tools."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field

from spbot.config import Duration, config_section
from spbot.scheduler import cron_trigger

from .drivers.apt import AptParams
from .drivers.nixos import NixosParams
from .drivers.systemctl import RebootParams
from spbot.model import Model


def _valid_cron(expr: str) -> str:
    cron_trigger(expr, "UTC")
    return expr


Cron = Annotated[str, AfterValidator(_valid_cron)]


class AptSettings(AptParams):
    model_config = ConfigDict(extra="forbid")


class NixosSettings(NixosParams):
    model_config = ConfigDict(extra="forbid")


class RebootSettings(RebootParams):
    model_config = ConfigDict(extra="forbid")


@config_section("upgrade")
class UpgradeSettings(Model):
    """[upgrade]: the daily check for updates, the automatic upgrade window and the reboot reminder;
    [upgrade.apt], [upgrade.nixos] and [upgrade.reboot] hold the tools and their limits."""
    model_config = ConfigDict(extra="forbid")

    os_release: Path | None = Field(
        None,
        description="The os-release file that tells Debian, Ubuntu and NixOS apart (unset: /etc/os-release, then "
                    "/usr/lib/os-release).")
    apt: AptSettings = Field(
        default_factory=AptSettings,
        description="Debian and Ubuntu: apt-get and its limits.")
    nixos: NixosSettings = Field(
        default_factory=NixosSettings,
        description="NixOS: nixos-rebuild, the flake and their limits.")
    reboot: RebootSettings = Field(default_factory=RebootSettings, description="How the machine is rebooted.")
    pre_upgrade_backup: bool = Field(
        True,
        description="Back up every service before an upgrade, when backups are set up.")
    check_enabled: bool = Field(
        True,
        description="Check daily for pending updates and post when the set of pending updates changes.")
    check_cron: Cron = Field("0 6 * * *", description="When the daily check runs (crontab line).")
    auto_upgrade: bool = Field(False, description="Upgrade without approval in the window below.")
    auto_cron: Cron = Field("0 4 * * 0", description="When the automatic upgrade window opens (crontab line).")
    reboot_reminder: Duration = Field(86400.0, description="How often the \"reboot needed\" alert repeats.")
    boot_id_file: Path = Field(
        Path("/proc/sys/kernel/random/boot_id"),
        description="Where the kernel's boot id is read (tells a reboot from a restart of the bot).")
    uptime_file: Path = Field(Path("/proc/uptime"), description="Where the machine's uptime is read.")
    notice_wait: Duration = Field(15.0, description="How long a reboot waits for its notice to reach the room.")
