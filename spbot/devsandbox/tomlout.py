"""The few lines of TOML writing the dev stack needs (the generated bot config); tomllib only reads.

Scalars and lists are written in JSON syntax, which TOML accepts for strings, numbers, booleans and
arrays; nested tables become [dotted.headers]."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name: str) -> str:
    return name if _BARE.match(name) else json.dumps(name)


def _value(value: Any) -> str:
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value, ensure_ascii=False)


def dumps(data: dict[str, Any], _prefix: str = "") -> str:
    lines = [f"{_key(k)} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for name, table in data.items():
        if isinstance(table, dict):
            header = f"{_prefix}.{_key(name)}" if _prefix else _key(name)
            body = dumps(table, header)
            lines += ["", f"[{header}]", body] if body else ["", f"[{header}]"]
    return "\n".join(line for line in lines if line is not None).strip("\n") + ("\n" if not _prefix else "")


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`, table by table (a value in `override` replaces the whole key)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out
