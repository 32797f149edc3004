"""The NixOS module (deploy/nixos): every file parses with Nix, the settings it renders by default are a
config `spbot config check` accepts, and its sandbox is the same as the Debian unit's. (No nixpkgs here:
the module itself is not evaluated; Debian's nix-bin parses and evaluates the plain parts.)"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spbot.config_example import to_toml

ROOT = Path(__file__).resolve().parent.parent
NIXOS = ROOT / "deploy" / "nixos"
pytestmark = pytest.mark.skipif(shutil.which("nix-instantiate") is None,
                                reason="nix-instantiate is not installed (deploy/test installs nix-bin)")


@pytest.mark.parametrize("name", ["module.nix", "package.nix", "defaults.nix", "flake.nix"])
def test_every_nix_file_parses(name):
    result = subprocess.run(["nix-instantiate", "--parse", str(NIXOS / name)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_rendered_default_settings_are_accepted(tmp_path):
    evaluated = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", str(NIXOS / "defaults.nix")],
                               capture_output=True, text=True, check=True).stdout
    settings = json.loads(evaluated)
    settings.update({"homeserver": "https://matrix.example.org", "user_id": "@spbot:example.org",
                     "admins": ["@alice:example.org", "@bob:example.org"],
                     "rooms": ["!AbCdEfGhIjKlMnOpQr:example.org"]})
    config = tmp_path / "spbot.toml"
    config.write_text(to_toml(settings))
    result = subprocess.run([sys.executable, "-m", "spbot", "config", "check", str(config)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr + config.read_text()
    assert settings["password"]["file"].startswith("/run/credentials/spbot.service/"), \
        "the password reaches the bot as a systemd credential, never through the Nix store"


def unit_directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    section = ""
    for line in (ROOT / "deploy" / "spbot.service").read_text().splitlines():
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found.setdefault(key, []).extend(value.split())
    return found


def test_the_module_has_the_units_sandbox():
    module = (NIXOS / "module.nix").read_text()
    skip = {"ExecStart", "Environment", "ConfigurationDirectory", "ConfigurationDirectoryMode",
            "X-RestartIfChanged"}
    assert "restartIfChanged = false;" in module, "an upgrade must not restart the bot (NixOS' own option)"
    for key, values in unit_directives().items():
        if key in skip:
            continue
        assert re.search(rf"\b{key} = ", module), f"{key} is missing from the NixOS module"
        for value in values:
            if key in ("ReadWritePaths", "CapabilityBoundingSet", "RestrictAddressFamilies", "SystemCallFilter"):
                assert f'"{value}"' in module, f"{key} {value} is missing from the NixOS module"
