"""This machine as upgrades see it: which system it is, its driver configured from [upgrade], and the
kernel's boot id and uptime (which tell a reboot from a restart of the bot)."""
from __future__ import annotations

from spbot.context import UserError
from spbot.system.osinfo import OsInfo, OsInfoError, read_os_info

from .drivers import driver_for
from .drivers.apt import AptDriver
from .drivers.errors import UpgradeError
from .drivers.nixos import NixosDriver, NixosParams
from .settings import UpgradeSettings


def os_info(settings: UpgradeSettings) -> OsInfo:
    try:
        return read_os_info(settings.os_release)
    except OsInfoError as exc:
        raise UserError(f"I cannot tell which operating system this is: {exc}",
                        "Set [upgrade] os_release in the bot's config to the os-release file.")


# A NixOS service gets neither the system's tools on PATH nor NIX_PATH and HOME, which
# nixos-rebuild needs; NixOS's own nixos-upgrade.service sets them the same way.
NIXOS_ENV_DEFAULTS = {
    "HOME": "/root",
    "NIX_PATH": "nixpkgs=/nix/var/nix/profiles/per-user/root/channels/nixos"
                ":nixos-config=/etc/nixos/configuration.nix:/nix/var/nix/profiles/per-user/root/channels",
}
NIXOS_PATH = ("/run/wrappers/bin", "/run/current-system/sw/bin", "/nix/var/nix/profiles/default/bin")


def nixos_env(params: NixosParams) -> dict[str, str]:
    env = {**NIXOS_ENV_DEFAULTS, **params.base_env()}
    present = [p for p in env.get("PATH", "").split(":") if p]
    env["PATH"] = ":".join(present + [p for p in NIXOS_PATH if p not in present])
    return env


def driver(settings: UpgradeSettings, info: OsInfo) -> AptDriver | NixosDriver:
    apt = settings.apt.model_copy(update={"env": {**settings.apt.base_env(), "NEEDRESTART_MODE": "l"}})
    nixos = settings.nixos.model_copy(update={"env": nixos_env(settings.nixos)})
    try:
        return driver_for(info, apt, nixos)
    except UpgradeError as exc:
        raise UserError(str(exc), "Upgrade this server by hand; spbot drives apt and nixos-rebuild only.")


def boot_id(settings: UpgradeSettings) -> str | None:
    try:
        return settings.boot_id_file.read_text().strip() or None
    except OSError:
        return None


def uptime(settings: UpgradeSettings) -> float | None:
    try:
        return float(settings.uptime_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def system_driver(settings: UpgradeSettings) -> tuple[OsInfo, AptDriver | NixosDriver]:
    info = os_info(settings)
    return info, driver(settings, info)
