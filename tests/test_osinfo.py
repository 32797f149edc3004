"""os-release parsing, with the texts the real systems ship."""
from __future__ import annotations

from pathlib import Path

import pytest

from spbot.system.osinfo import OsInfoError, parse_os_release, read_os_info

DEBIAN_12 = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""

UBUNTU_24_04 = """\
PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=noble
LOGO=ubuntu-logo
"""

NIXOS_24_05 = """\
ANSI_COLOR="1;34"
BUG_REPORT_URL="https://github.com/NixOS/nixpkgs/issues"
BUILD_ID="24.05.20240612.cc54fb4"
DOCUMENTATION_URL="https://nixos.org/learn.html"
HOME_URL="https://nixos.org/"
ID=nixos
IMAGE_ID=""
IMAGE_VERSION=""
LOGO="nix-snowflake"
NAME=NixOS
PRETTY_NAME="NixOS 24.05 (Uakari)"
SUPPORT_END="2024-12-31"
SUPPORT_URL="https://nixos.org/community.html"
VERSION="24.05 (Uakari)"
VERSION_CODENAME=uakari
VERSION_ID="24.05"
"""

LINUX_MINT_22 = """\
NAME="Linux Mint"
VERSION="22 (Wilma)"
ID=linuxmint
ID_LIKE="ubuntu debian"
PRETTY_NAME="Linux Mint 22"
VERSION_ID="22"
VERSION_CODENAME=wilma
"""

FEDORA_40 = """\
NAME="Fedora Linux"
VERSION="40 (Server Edition)"
ID=fedora
VERSION_ID=40
PRETTY_NAME="Fedora Linux 40 (Server Edition)"
"""


@pytest.mark.parametrize("text, family, pretty, version_id, codename", [
    (DEBIAN_12, "debian", "Debian GNU/Linux 12 (bookworm)", "12", "bookworm"),
    (UBUNTU_24_04, "ubuntu", "Ubuntu 24.04.1 LTS", "24.04", "noble"),
    (NIXOS_24_05, "nixos", "NixOS 24.05 (Uakari)", "24.05", "uakari"),
    (LINUX_MINT_22, "ubuntu", "Linux Mint 22", "22", "wilma"),
    (FEDORA_40, "other", "Fedora Linux 40 (Server Edition)", "40", ""),
])
def test_families(text, family, pretty, version_id, codename):
    info = parse_os_release(text)
    assert (info.family, info.pretty_name, info.version_id, info.codename) == (
        family, pretty, version_id, codename)
    assert info.uses_apt == (family in ("debian", "ubuntu"))


def test_versions_and_names():
    nixos = parse_os_release(NIXOS_24_05)
    assert (nixos.id, nixos.name, nixos.version) == ("nixos", "NixOS", "24.05 (Uakari)")
    ubuntu = parse_os_release(UBUNTU_24_04)
    assert ubuntu.version == "24.04.1 LTS (Noble Numbat)"


def test_comments_blank_lines_single_quotes_and_missing_pretty_name():
    info = parse_os_release("# a comment\n\nID='debian'\nNAME=Debian\nbroken line\n")
    assert (info.family, info.pretty_name) == ("debian", "Debian")
    assert parse_os_release("").family == "other"


def test_read_from_injected_path(tmp_path: Path):
    path = tmp_path / "os-release"
    path.write_text(NIXOS_24_05)
    assert read_os_info(path).family == "nixos"


def test_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(OsInfoError, match="no os-release file found"):
        read_os_info(tmp_path / "nope")


def test_this_machine_parses():
    assert read_os_info().pretty_name
