"""Round trip of `!ping` as a real E2EE admin client sees it: spbot against a minimal nio echo bot on the
same (fresh, loopback) Synapse, plus both processes' idle RSS. Prints its figures; asserts nothing.

    .venv/bin/python bench/roundtrip.py [--pings 40]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spbot.chatclient import ChatClient  # noqa: E402
from spbot.devstack import BotProcess, PlainSession, Synapse, free_port, write_bot_config  # noqa: E402

PASSWORD = "bench password 42"


async def measure(client: ChatClient, room: str, bot: str, pings: int) -> list[float]:
    for _ in range(3):                                     # warm-up: sessions shared, keys queried
        await client.command(room, "!ping", bot, timeout=30)
    times = []
    for _ in range(pings):
        started = time.perf_counter()
        await client.command(room, "!ping", bot, timeout=30)
        times.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.05)
    return times


def rss_mb(pid: int) -> float:
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process] + process.children(recursive=True)) / 2**20


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[max(0, int(round(0.95 * len(ordered))) - 1)]


async def main(pings: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="spbot-bench-"))
    synapse = Synapse(work / "synapse", free_port())
    synapse.configure()
    synapse.start()
    processes = []
    try:
        admin = synapse.register("admin", PASSWORD)
        spbot_user = synapse.register("spbot", PASSWORD, admin=True)
        echo_user = synapse.register("echo", PASSWORD)
        owner = PlainSession.login(synapse.url, admin, PASSWORD)
        spbot_room = owner.create_encrypted_room("spbot bench", [spbot_user])
        echo_room = owner.create_encrypted_room("echo bench", [echo_user])
        (work / "pw").write_text(PASSWORD)
        config = write_bot_config(work / "bot.toml", homeserver=synapse.url, user_id=spbot_user,
                                  password_file=work / "pw", admins=[admin], rooms=[spbot_room],
                                  state_dir=work / "spbot-state", log_level="WARNING")
        spbot = BotProcess(config, work / "spbot.log", cwd=ROOT)
        spbot.start()
        processes.append(spbot)
        echo = subprocess.Popen([sys.executable, str(ROOT / "bench" / "echo_bot.py"), synapse.url, echo_user,
                                 PASSWORD, echo_room, str(work / "echo-store")],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        echo.stdout.readline()
        client = await ChatClient(synapse.url, admin, PASSWORD, work / "client").start()
        await client.wait_joined(spbot_room, spbot_user, 60)
        await client.wait_joined(echo_room, echo_user, 60)
        results = {}
        # interleave the two so that machine noise hits both alike
        for round_ in range(2):
            for name, room, bot in (("spbot", spbot_room, spbot_user), ("echo", echo_room, echo_user)):
                results.setdefault(name, []).extend(await measure(client, room, bot, pings // 2))
        await asyncio.sleep(5)
        rss = {"spbot": rss_mb(spbot.process.pid), "echo": rss_mb(echo.pid)}
        await client.stop()
        echo.terminate()
        spbot_med, spbot_p95 = summary(results["spbot"])
        echo_med, echo_p95 = summary(results["echo"])
        print(f"pings per bot: {len(results['spbot'])}")
        print(f"spbot    median {spbot_med:6.1f} ms   p95 {spbot_p95:6.1f} ms   idle RSS {rss['spbot']:6.1f} MiB")
        print(f"echo bot median {echo_med:6.1f} ms   p95 {echo_p95:6.1f} ms   idle RSS {rss['echo']:6.1f} MiB")
        print(f"ratio    median {spbot_med / echo_med:.2f}x   p95 {spbot_p95 / echo_p95:.2f}x   "
              f"RSS {rss['spbot'] / rss['echo']:.2f}x   (goals: <= 1.10x round trip, <= 1.3x RSS)")
    finally:
        for process in processes:
            process.stop()
        synapse.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--pings", type=int, default=40)
    asyncio.run(main(parser.parse_args().pings))
