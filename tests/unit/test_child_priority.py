"""Heavy work yields to the family (spbot/system/priority.py): a program run for a feature's heavy work
gets a lower CPU and I/O priority, as configured per feature; the bot's own programs keep theirs. Real
child processes report what the kernel gave them."""
from __future__ import annotations

import os
import subprocess

import pytest

from spbot.system import priority, proc

REPORT = ["sh", "-c", "cut -d' ' -f19 /proc/self/stat; ionice -p $$"]


async def priorities(work: str | None) -> tuple[int, str]:
    result = await proc.run(REPORT, timeout=10, work=work)
    nice, io = result.stdout.splitlines()
    return int(nice), io


def own() -> tuple[int, str]:
    """The test process's own priorities: what a program not run for heavy work keeps."""
    io = subprocess.run(["ionice", "-p", str(os.getpid())], capture_output=True, text=True).stdout.strip()
    return os.getpriority(os.PRIO_PROCESS, 0), io


@pytest.fixture(autouse=True)
def unconfigured():
    priority.configure({})
    yield
    priority.configure({})


async def test_heavy_work_runs_low_by_default_and_the_bots_own_programs_do_not():
    assert await priorities("backup") == (10, "best-effort: prio 7")
    assert await priorities("upgrade") == (10, "best-effort: prio 7")
    assert await priorities(None) == own()


async def test_each_feature_has_its_own_level():
    priority.configure({"backup": "idle", "cleanup": "normal"})
    assert await priorities("backup") == (19, "idle")
    assert await priorities("cleanup") == own()
    assert await priorities("upgrade") == (10, "best-effort: prio 7")
