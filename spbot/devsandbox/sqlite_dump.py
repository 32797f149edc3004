"""`python -m spbot.devsandbox.sqlite_dump SOURCE DEST`: a consistent copy of a live SQLite database.

The dev stack's backup of Synapse runs this as its pre step: SQLite's online backup API copies the
database page by page while Synapse keeps writing, so the snapshot never holds a torn file."""
from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path


def dump(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    out = sqlite3.connect(partial)
    try:
        src.backup(out)
    finally:
        out.close()
        src.close()
    os.replace(partial, dest)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m spbot.devsandbox.sqlite_dump SOURCE DEST")
    dump(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"dumped {sys.argv[1]} to {sys.argv[2]}")
