"""Which catalogue services this machine runs: unit files present, data paths present, NixOS options
switched on in /etc/nixos. Detection only suggests: the proposed [services.<name>] tables are for the
admin to copy into the config (`spbot services detect`, `!services detect`).

Everything is looked up below `root` (the machine's / ; a fake tree in tests)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .catalogue import catalogue
from .definition import Definition

UNIT_DIRS = ("etc/systemd/system", "run/systemd/system", "lib/systemd/system", "usr/lib/systemd/system",
             "run/current-system/sw/lib/systemd/system", "etc/systemd/system.control")
NIXOS_CONFIG = "etc/nixos"


@dataclass
class Found:
    """One catalogue service found on the machine, and the evidence."""
    spec: Definition
    units: list[str] = field(default_factory=list)         # unit files present
    paths: list[Path] = field(default_factory=list)        # data paths present
    missing_paths: list[Path] = field(default_factory=list)
    nixos_option: bool = False                             # its option is on in /etc/nixos/*.nix

    @property
    def name(self) -> str:
        return self.spec.name

    def evidence(self) -> str:
        parts = [f"unit {', '.join(self.units)}"] if self.units else []
        parts += [f"{self.spec.nixos_option} in /etc/nixos"] if self.nixos_option else []
        parts += [f"data {', '.join(map(str, self.paths))}"] if self.paths else []
        return "; ".join(parts)


def _inside(root: Path, path: Path | str) -> Path:
    return root / str(path).lstrip("/")


def unit_files(root: Path) -> set[str]:
    """The names of the unit files under the machine's systemd directories."""
    names: set[str] = set()
    for directory in UNIT_DIRS:
        where = _inside(root, directory)
        if where.is_dir():
            names.update(p.name for p in where.iterdir())
    return names


def nixos_text(root: Path) -> str:
    """The machine's NixOS configuration files, for looking up `services.x.enable = true`."""
    where = _inside(root, NIXOS_CONFIG)
    if not where.is_dir():
        return ""
    texts = []
    for path in sorted(where.rglob("*.nix"))[:200]:
        try:
            texts.append(path.read_text(errors="replace")[:1_000_000])
        except OSError:
            continue
    return "\n".join(texts)


def option_on(text: str, option: str) -> bool:
    """`services.gitea.enable = true;` (also inside `services.gitea = { enable = true; }`)."""
    *scope, last = option.split(".")
    flat = re.escape(option) + r"\s*=\s*true\b"
    nested = re.escape(".".join(scope)) + r"\s*=\s*\{[^}]*\b" + re.escape(last) + r"\s*=\s*true\b"
    return bool(re.search(flat, text) or (scope and re.search(nested, text, re.S)))


def detect(root: Path = Path("/")) -> list[Found]:
    """Every non-template catalogue service with a unit file or its NixOS option on, by name."""
    distro = "nixos" if _inside(root, "etc/NIXOS").exists() else "debian"
    present, nix = unit_files(root), nixos_text(root)
    found = []
    for name, base in sorted(catalogue().items()):
        if base.generic:
            continue
        spec = base.for_distro(distro)
        units = [u for u in spec.all_units if u in present]
        on = bool(spec.nixos_option and nix and option_on(nix, spec.nixos_option))
        if not (set(units) & set(spec.units) or on):
            continue
        paths = [p for p in spec.data_paths if _inside(root, p).exists()]
        found.append(Found(spec, units, paths, [p for p in spec.data_paths if p not in paths], on))
    return found


def proposal(found: list[Found], enabled: set[str] = frozenset()) -> str:
    """The [services.<name>] tables to copy into the config (commented where already enabled)."""
    if not found:
        return ""
    lines: list[str] = []
    for item in found:
        lead = "# already enabled: " if item.name in enabled else ""
        lines.append(f"# {item.spec.description} — found: {item.evidence()}")
        lines.append(f"{lead}[services.{item.name}]")
        if item.paths and item.missing_paths:
            lines.append(f"{lead}data_paths = [{', '.join(_quoted(p) for p in item.paths)}]"
                         f"   # not here: {', '.join(map(str, item.missing_paths))}")
        elif not item.paths and item.spec.data_paths:
            lines.append(f"# none of its data paths exist here ({', '.join(map(str, item.spec.data_paths))}): "
                         "give yours with data_paths = [...]")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _quoted(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'
