"""Log lines as an operator reads them: journald priorities under systemd, one format for everything."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = """
import logging, warnings
from spbot.logs import get_logger, setup_logging, register_secret
setup_logging("DEBUG")
register_secret("hunter2-secret")
log = get_logger("spbot.test")
log.info("started", device="ABC")
log.warning("homeserver_unreachable", detail="token hunter2-secret")
try:
    raise RuntimeError("kaboom")
except RuntimeError:
    log.exception("crashed")
logging.getLogger("nio.client").warning("a library speaks")
warnings.warn("something deprecated", DeprecationWarning)
"""


def run(tmp_path: Path, journal: bool) -> list[str]:
    out = tmp_path / "stderr.txt"
    with open(out, "wb") as stderr:
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        if journal:
            stat = os.fstat(stderr.fileno())
            env["JOURNAL_STREAM"] = f"{stat.st_dev}:{stat.st_ino}"
        subprocess.run([sys.executable, "-W", "always", "-c", SCRIPT], stderr=stderr, cwd=ROOT,
                       env=env, check=True, timeout=60)
    return out.read_text().splitlines()


def test_under_journald_every_line_carries_its_priority_and_no_timestamp(tmp_path):
    lines = run(tmp_path, journal=True)
    assert lines[0] == "<6>INFO spbot.test started device=ABC"
    assert lines[1].startswith("<4>WARNING spbot.test homeserver_unreachable")
    assert all(line[:3] in ("<6>", "<4>", "<3>") for line in lines), lines
    traceback = [line for line in lines if "Traceback" in line or "kaboom" in line]
    assert traceback and all(line.startswith("<3>") for line in traceback)
    assert "<4>WARNING nio.client a library speaks" in lines
    assert any(line.startswith("<4>WARNING py.warnings") and "something deprecated" in line for line in lines)
    assert not any("hunter2-secret" in line for line in lines)


def test_on_a_terminal_lines_have_a_timestamp_and_no_prefix(tmp_path):
    lines = run(tmp_path, journal=False)
    assert lines[0].endswith("Z INFO spbot.test started device=ABC") and lines[0][:2] == "20"
    assert not any(line.startswith("<") for line in lines)
    assert any("WARNING py.warnings" in line for line in lines)
