"""What the light-footprint benchmarks share (bench/light.py runs them all on one of these): a fresh
loopback Synapse, spbot as a real process (backup configured on a local repository) and the minimal nio
echo bot (bench/echo_bot.py) beside it, and an E2EE admin client talking to both. Not a figure itself.
"""
from __future__ import annotations

import asyncio
import compileall
import contextlib
import functools
import logging
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spbot.chatclient import ChatClient  # noqa: E402
from spbot.devstack import BotProcess, PlainSession, Synapse, free_port, write_bot_config  # noqa: E402

PASSWORD = "bench password 42"
REPO_PASSWORD = "bench repository password 7"


def compile_bytecode() -> None:
    """The bot's modules as an installed bot has them: `pip install` writes their bytecode, but this
    checkout may be run with PYTHONDONTWRITEBYTECODE (as here), which would make spbot compile every
    module from source at each launch while nio (installed) never does: an unfair launch figure."""
    for folder in ("spbot", "commands", "providers"):
        compileall.compile_dir(ROOT / folder, quiet=2)


@dataclass
class Figure:
    """One row of the issue's table: what was measured now, and the goal it is held to."""
    name: str
    now: str
    goal: str
    met: bool

    def line(self) -> str:
        return f"| {self.name} | {self.now} | {self.goal} | {'✅' if self.met else '❌'} |"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(share * len(ordered))) - 1)]


def median(values: list[float]) -> float:
    return statistics.median(values)


def tree_pids(pid: int) -> list[int]:
    try:
        process = psutil.Process(pid)
        return [pid] + [c.pid for c in process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def rss_mib(pid: int) -> float:
    total = 0
    for member in tree_pids(pid):
        try:
            total += psutil.Process(member).memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def context_switches(pid: int) -> int:
    """Every time any thread of the process (and its children) was woken or preempted, so far."""
    total = 0
    for member in tree_pids(pid):
        for task in Path(f"/proc/{member}/task").glob("*"):
            try:
                for line in (task / "status").read_text().splitlines():
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
            except OSError:
                pass
    return total


def exited_within(process: subprocess.Popen, timeout: float) -> bool:
    """Whether the process ended within `timeout` s, seen the moment it ends (through a pidfd).
    Popen.wait(timeout) polls, sleeping up to 50 ms between looks: it reported an exit at 70 ms as
    113 ms, and one at 60 ms as 63 ms."""
    fd = os.pidfd_open(process.pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return bool(ready)


# What the core imports beyond the echo bot's imports, each on top of nio and those before it (one
# interpreter, in this order): the project's chosen libraries for config, schedules, disks and signing,
# and its state database. APScheduler as spbot/scheduler.py imports it (its own plugins only).
ON_NIO = [("pydantic", "from pydantic import BaseModel, Field"),
          ("APScheduler", "import importlib.metadata as m\nevery, own = m.entry_points, m.distribution("
                          "'APScheduler').entry_points\nm.entry_points = lambda **selection: own.select(**selection)"
                          "\nimport apscheduler.schedulers.asyncio, apscheduler.triggers.cron\nm.entry_points = every"),
          ("psutil", "import psutil"), ("PyNaCl", "import nacl.signing"), ("aiosqlite", "import aiosqlite")]
_ON_NIO_PROBE = """
import gc, os, time
os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
gc.disable()
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096
import asyncio, json, nio
for statement in {statements!r}:
    before, started = rss(), time.perf_counter()
    exec(statement)
    print(time.perf_counter() - started, (rss() - before) / 2**20)
"""


@functools.cache                 # bench/light.py prints it under two figures: measured once
def on_nio(rounds: int = 3) -> list[tuple[str, float, float]]:
    """What each library of ON_NIO adds to a process that imported what the echo bot imports: its name,
    import time (s, the median of `rounds` fresh interpreters) and RSS (MiB)."""
    runs = []
    for _ in range(rounds):
        out = subprocess.run([sys.executable, "-c", _ON_NIO_PROBE.format(
            statements=[statement for _, statement in ON_NIO])], cwd=ROOT, capture_output=True, text=True,
            check=True).stdout
        runs.append([tuple(map(float, line.split())) for line in out.splitlines()])
    return [(name, median([run[i][0] for run in runs]), median([run[i][1] for run in runs]))
            for i, (name, _) in enumerate(ON_NIO)]


def budget_line(goal: float, echo: float, costs: list[tuple[str, float]], unit: str) -> str:
    """The room a ratio goal leaves over the echo bot's figure, and how much of it the libraries of
    ON_NIO take alone, before any of spbot's own code."""
    allowed, taken = echo * (goal - 1), sum(cost for _, cost in costs)
    return (f"the goal allows {allowed:.1f} {unit} over the echo bot; on top of nio, "
            + ", ".join(f"{name} {cost:.1f}" for name, cost in costs)
            + f" {unit}: {taken:.1f} {unit} ({100 * taken / allowed:.0f}% of it) before any spbot code")


def restic_env(repo: Path, password_file: Path, cache: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(repo.parent), "RESTIC_REPOSITORY": str(repo),
            "RESTIC_PASSWORD_FILE": str(password_file), "RESTIC_CACHE_DIR": str(cache)}


class Stack:
    """Start with `await Stack.up()`; always `await stack.down()`."""

    def __init__(self, base: Path | None = None):
        self.work = Path(tempfile.mkdtemp(prefix="spbot-bench-light-", dir=base))
        self.synapse = Synapse(self.work / "synapse", free_port())
        self.spbot: BotProcess | None = None
        self.echo: subprocess.Popen | None = None
        self.client: ChatClient | None = None
        self.data = self.work / "data"
        self.repo = self.work / "bot-repo"
        self.password_file = self.work / "restic-password"

    @classmethod
    async def up(cls, base: Path | None = None) -> "Stack":
        logging.getLogger("nio").setLevel(logging.ERROR)
        stack = cls(base)
        try:
            await stack._up()
        except BaseException:
            await stack.down()
            raise
        return stack

    async def _up(self) -> None:
        compile_bytecode()
        self.data.mkdir()
        (self.data / "hello.txt").write_text("hello\n")
        self.password_file.write_text(REPO_PASSWORD + "\n")
        self.password_file.chmod(0o600)
        subprocess.run(["restic", "init"], env=self.restic_env(), check=True, capture_output=True)
        self.synapse.configure()
        self.synapse.start()
        self.admin = self.synapse.register("admin", PASSWORD)
        self.spbot_user = self.synapse.register("spbot", PASSWORD, admin=True)
        self.echo_user = self.synapse.register("echo", PASSWORD)
        owner = PlainSession.login(self.synapse.url, self.admin, PASSWORD)
        self.spbot_room = owner.create_encrypted_room("spbot bench", [self.spbot_user])
        self.echo_room = owner.create_encrypted_room("echo bench", [self.echo_user])
        (self.work / "pw").write_text(PASSWORD)
        self.config = write_bot_config(
            self.work / "bot.toml", homeserver=self.synapse.url, user_id=self.spbot_user,
            password_file=self.work / "pw", admins=[self.admin], rooms=[self.spbot_room],
            state_dir=self.work / "spbot-state", log_level="WARNING", extra=f"""
[backup]
password = {{file = "{self.password_file}"}}
host = "bench"
schedule = "off"
retention_schedule = "off"
drill_schedule = "off"
digest_schedule = "off"
[backup.repository]
kind = "local"
path = "{self.repo}"
[backup.services.data]
paths = ["{self.data}"]
""")
        self.spbot = BotProcess(self.config, self.work / "spbot.log", cwd=ROOT)
        self.spbot.start()
        self.start_echo()
        self.client = await ChatClient(self.synapse.url, self.admin, PASSWORD, self.work / "client").start()
        await self.client.wait_joined(self.spbot_room, self.spbot_user, 90)
        await self.client.wait_joined(self.echo_room, self.echo_user, 90)
        for _ in range(3):                  # warm-up: room keys shared, device keys queried
            await self.ping("spbot", timeout=60)
            await self.ping("echo", timeout=60)

    def restic_env(self) -> dict[str, str]:
        return restic_env(self.repo, self.password_file, self.work / "bare-cache")

    def room(self, bot: str) -> tuple[str, str]:
        return (self.spbot_room, self.spbot_user) if bot == "spbot" else (self.echo_room, self.echo_user)

    def pid(self, bot: str) -> int:
        return self.spbot.process.pid if bot == "spbot" else self.echo.pid

    async def ping(self, bot: str, text: str = "!ping", timeout: float = 30) -> float:
        """One command's round trip in ms, as the admin's client sees it."""
        room, user = self.room(bot)
        started = time.perf_counter()
        await self.client.command(room, text, user, timeout=timeout)
        return (time.perf_counter() - started) * 1000

    def start_echo(self) -> None:
        self.echo = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "echo_bot.py"), self.synapse.url, self.echo_user, PASSWORD,
             self.echo_room, str(self.work / "echo-store")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def start_bot(self, bot: str) -> None:
        if bot == "spbot":
            self.spbot.start()
        else:
            self.start_echo()

    def stop_bot(self, bot: str) -> float:
        """SIGTERM to exit, in ms."""
        process = self.spbot.process if bot == "spbot" else self.echo
        started = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        if not exited_within(process, 30):
            process.kill()
        process.wait()
        took = (time.perf_counter() - started) * 1000
        if bot == "spbot":
            self.spbot.process = None
            self.spbot.pid_path.unlink(missing_ok=True)
        return took

    @contextlib.asynccontextmanager
    async def core_in_place(self):
        """Meanwhile the core-only bot (bench/core_bot.py) runs as spbot, on its account, state and
        config, and answers its pings; the whole bot again afterwards."""
        self.stop_bot("spbot")
        whole = self.spbot
        self.spbot = BotProcess(self.config, self.work / "core.log", cwd=ROOT,
                                argv=[sys.executable, str(ROOT / "bench" / "core_bot.py")])
        self.spbot.start()
        try:
            await self.ping("spbot", timeout=90)
            yield
        finally:
            if self.spbot.process is not None:
                self.stop_bot("spbot")
            self.spbot = whole
            self.spbot.start()
            await self.ping("spbot", timeout=90)

    async def down(self) -> None:
        if self.client is not None:
            await self.client.stop()
        if self.spbot is not None and self.spbot.process is not None:
            self.spbot.stop()
        if self.echo is not None and self.echo.poll() is None:
            self.echo.terminate()
            self.echo.wait()
        self.synapse.stop()
        shutil.rmtree(self.work, ignore_errors=True)


async def on_own_stack(measure, *args, base: Path | None = None) -> None:
    """Run one figure's `measure(stack, ...)` on a stack of its own and print its row."""
    stack = await Stack.up(base)
    try:
        figures = await measure(stack, *args)
    finally:
        await stack.down()
    for figure in figures if isinstance(figures, list) else [figures]:
        print(figure.line())


def run(measure, *args) -> None:
    asyncio.run(on_own_stack(measure, *args))
