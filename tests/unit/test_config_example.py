"""The example configuration is the settings models' own text: every key of every section has a
description, deploy/spbot.example.toml is exactly what `spbot config example` prints, and each section's
block of it, switched on, is a config the bot accepts."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from spbot import commands
from spbot.config import SECTIONS, Config, ConfigError, Secret, load_config, model_in
from spbot.config_example import render_example, uncommented

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_FILE = ROOT / "deploy" / "spbot.example.toml"


@pytest.fixture(autouse=True, scope="module")
def all_sections():
    commands.load_all()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("SPBOT_"):
            monkeypatch.delenv(name)


def _models(model: type[BaseModel], path: str, seen: set) -> list[tuple[str, type[BaseModel]]]:
    """The model and every model nested in it (each alternative of a union too), with its key path."""
    if model in seen or model is Secret:         # a secret's { file } / { env } is told in the header
        return []
    seen.add(model)
    found = [(path, model)]
    for key, info in model.model_fields.items():
        hints = [info.annotation]
        while hints:
            hint = hints.pop()
            hints.extend(getattr(hint, "__args__", ()) or ())
            if isinstance(hint, type) and issubclass(hint, BaseModel):
                found += _models(hint, f"{path}.{key}", seen)
    return found


def builtin_sections() -> dict[str, type[BaseModel]]:
    """The sections spbot itself registers (other unit tests register samples of their own)."""
    return {name: model for name, model in SECTIONS.items() if model.__module__.startswith("spbot.")}


def every_model() -> list[tuple[str, type[BaseModel]]]:
    seen: set = set()
    found = _models(Config, "(top level)", seen)
    for name, model in sorted(builtin_sections().items()):
        found += _models(model, name, seen)
    return found


def test_every_key_of_every_section_is_documented():
    missing = [f"{path}.{key} ({model.__module__}.{model.__name__})"
               for path, model in every_model() for key, info in model.model_fields.items()
               if not (info.description or "").strip()]
    assert not missing, "add Field(description=…) to: " + ", ".join(missing)
    assert len(every_model()) > 20                  # the walk reaches the nested models


def test_every_required_key_has_an_example():
    missing = [f"{path}.{key}" for path, model in every_model() for key, info in model.model_fields.items()
               if info.is_required() and not info.examples]
    assert not missing, "add Field(examples=[…]) to: " + ", ".join(missing)


def test_every_section_refuses_unknown_keys():
    lax = [f"{path} ({model.__name__})" for path, model in every_model()
           if model is not Config and model.model_config.get("extra") != "forbid"]
    assert not lax, "set model_config = ConfigDict(extra=\"forbid\") in: " + ", ".join(lax)


def test_the_example_file_is_the_generated_one():
    printed = subprocess.run([sys.executable, "-m", "spbot", "config", "example"], capture_output=True,
                             text=True, cwd=ROOT, timeout=60, check=True).stdout
    assert printed == render_example(builtin_sections())
    assert EXAMPLE_FILE.read_text() == printed, \
        "deploy/spbot.example.toml is out of date: run  spbot config example > deploy/spbot.example.toml"


def blocks(example: str) -> tuple[str, list[tuple[str, str]]]:
    """The core keys (before the first section), and each section block as (table, text)."""
    parts = re.split(r"^(?=## -{3,} \[)", example, flags=re.M)
    found = []
    for part in parts[1:]:
        table = re.search(r"^# \[(.+)\]$", part, flags=re.M)
        assert table, f"a section block without its table line:\n{part}"
        found.append((table.group(1), part))
    return parts[0], found


def variants(found: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Per top-level section: its blocks switched on together, once per alternative of a table that
    has several shapes ([backup.repository] local, s3, b2): only one of them can be used at a time."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for table, text in found:
        groups.setdefault(re.match(r'[^."]+', table).group(0), []).append((table, text))
    result = {}
    for top, members in groups.items():
        first: dict[str, str] = {}
        for table, text in members:
            first.setdefault(table, text)
        chosen = [dict(first)]
        for index, (table, text) in enumerate(members):
            if first[table] is not text:
                chosen.append({**first, table: text})
        result[top] = ["".join(choice.values()) for choice in chosen]
    return result


def check(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "spbot.toml"
    path.write_text(text)
    try:
        load_config(path).check_sections()
    except ConfigError as exc:
        return exc.problems
    return []


def test_each_section_of_the_example_switched_on_is_accepted(tmp_path):
    core, found = blocks(render_example(builtin_sections()))
    assert check(tmp_path, core) == []
    groups = variants(found)
    assert set(builtin_sections()) <= set(groups), "every registered section has a block"
    assert len(groups["backup"]) == 3, "the repository's three kinds are each shown"
    for top, texts in groups.items():
        for text in texts:
            problems = check(tmp_path, core + uncommented(text))
            assert problems == [], f"[{top}] of the example, switched on, is refused: {problems}\n{text}"


def test_the_example_shows_every_key():
    text = render_example(builtin_sections())
    for path, model in every_model():
        for key, info in model.model_fields.items():
            if key in ("plugins", "policies") or model_in(info.annotation) not in (None, Secret):
                continue                         # tables are blocks of their own
            assert re.search(rf"^(# |## )?{re.escape(key)}( =|:)", text, flags=re.M), f"{path}.{key}"
