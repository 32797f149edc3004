"""`devstack.alive`: what the dev tools wait on when they stop a bot they did not start themselves."""
from __future__ import annotations

import subprocess
import sys
import time

from spbot.devstack import alive
from spbot.system.children import read_stat

UNREAPED = ("import subprocess, time; child = subprocess.Popen(['true']); print(child.pid, flush=True); "
            "time.sleep(30)")


def test_an_exited_process_its_parent_has_not_reaped_is_not_alive():
    """The bot of a stack started in a test's own process is such a zombie once `spbot dev restart`
    stopped it: waited on as running, it held that restart for 20 s."""
    parent = subprocess.Popen([sys.executable, "-c", UNREAPED], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        deadline = time.monotonic() + 10
        while read_stat(pid).state != "Z":
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.05)
        assert not alive(pid)
        assert alive(parent.pid)
    finally:
        parent.kill()
        parent.wait()
