"""The issue's measure of a codebase easy to live in, checked by the project's own tools: no module of the
runtime, the chat commands or the providers is longer than 450 lines (one concern per module; the house
rule aims under ~400). The import boundaries are deploy/lint-imports' job (.importlinter)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MOST_LINES = 450


def test_no_module_is_longer_than_450_lines():
    sizes = {path.relative_to(ROOT): len(path.read_text().splitlines())
             for folder in ("spbot", "commands", "providers") for path in (ROOT / folder).rglob("*.py")}
    assert len(sizes) > 100                      # the folders were found
    too_long = {str(path): lines for path, lines in sizes.items() if lines > MOST_LINES}
    assert too_long == {}, f"split these by concern: {too_long}"
