"""The same data backed up by bare `restic backup` and by `!backup now` through spbot (measured from the
E2EE command to the final reply), in one run, on a fresh loopback Synapse. Each round backs up into a
fresh copy of the same initialized repository (full backup, no parent), bare and bot alternating so
machine noise hits both alike; the page cache is warmed first. Prints its figures; asserts nothing.

    .venv/bin/python bench/backup.py [--size-mb 1024] [--rounds 2] [--dir /var/tmp]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spbot.chatclient import ChatClient  # noqa: E402
from spbot.devstack import BotProcess, PlainSession, Synapse, free_port, write_bot_config  # noqa: E402

PASSWORD = "bench password 42"
REPO_PASSWORD = "bench repository password 7"


def make_data(root: Path, megabytes: int) -> tuple[int, int]:
    """Mostly large incompressible files, plus many small files and some text: (files, bytes)."""
    big, small, text = megabytes * 70 // 100, megabytes * 20 // 100, megabytes * 10 // 100
    (root / "media").mkdir(parents=True)
    for i in range(max(1, big // 32)):
        (root / "media" / f"video-{i:03}.bin").write_bytes(os.urandom(32 << 20))
    for i in range(max(1, small * 1024 // 48)):   # 16..80 KiB, 48 KiB on average
        folder = root / "documents" / f"folder-{i // 100:03}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"doc-{i % 100:02}.dat").write_bytes(os.urandom((16 + (i % 5) * 16) << 10))
    line = b"2024-01-01 12:00:00 family server log line with some repeated words and a number %d\n"
    (root / "logs").mkdir()
    for i in range(max(1, text // 8)):
        (root / "logs" / f"app-{i:02}.log").write_bytes(b"".join(line % n for n in range((8 << 20) // len(line))))
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def warm_page_cache(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                while fh.read(8 << 20):
                    pass


def restic_env(repo: Path, password_file: Path, cache: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(repo.parent), "RESTIC_REPOSITORY": str(repo),
            "RESTIC_PASSWORD_FILE": str(password_file), "RESTIC_CACHE_DIR": str(cache)}


def fresh_repo(template: Path, repo: Path, cache: Path) -> None:
    shutil.rmtree(repo, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    shutil.copytree(template, repo)


def bare_backup(data: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(["restic", "backup", "--tag", "service:data", "--host", "bench", str(data)], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True, timeout=3600)
    return time.perf_counter() - started


async def bot_backup(client: ChatClient, room: str, bot: str) -> tuple[float, str]:
    started = time.monotonic()
    command_id = await client.send(room, "!backup now data")
    reply = await client.wait_for(lambda e: e.sender == bot and e.reply_to == command_id
                                  and ("✅ data: snapshot" in e.body or "⚠️" in e.body), timeout=3600)
    if "✅" not in reply.body:
        raise RuntimeError(f"the bot's backup failed: {reply.body}")
    return reply.received - started, reply.body.splitlines()[0]


async def main(size_mb: int, rounds: int, base: Path | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="spbot-bench-backup-", dir=base))
    synapse = Synapse(work / "synapse", free_port())
    bot_process = None
    try:
        print(f"generating ~{size_mb} MiB in {work / 'data'} ...", flush=True)
        files, size = make_data(work / "data", size_mb)
        password_file = work / "restic-password"
        password_file.write_text(REPO_PASSWORD + "\n")
        password_file.chmod(0o600)
        template = work / "template-repo"
        subprocess.run(["restic", "init"], env=restic_env(template, password_file, work / "cache-init"),
                       check=True, capture_output=True)

        synapse.configure()
        synapse.start()
        admin = synapse.register("admin", PASSWORD)
        bot_user = synapse.register("spbot", PASSWORD, admin=True)
        owner = PlainSession.login(synapse.url, admin, PASSWORD)
        room = owner.create_encrypted_room("backup bench", [bot_user])
        (work / "pw").write_text(PASSWORD)
        state = work / "spbot-state"
        config = write_bot_config(work / "bot.toml", homeserver=synapse.url, user_id=bot_user,
                                  password_file=work / "pw", admins=[admin], rooms=[room], state_dir=state,
                                  log_level="WARNING", extra=f"""
[backup]
password = {{file = "{password_file}"}}
host = "bench"
schedule = "off"
retention_schedule = "off"
drill_schedule = "off"
digest_schedule = "off"
[backup.repository]
kind = "local"
path = "{work / 'bot-repo'}"
[backup.services.data]
paths = ["{work / 'data'}"]
""")
        bot_process = BotProcess(config, work / "spbot.log", cwd=ROOT)
        bot_process.start()
        client = await ChatClient(synapse.url, admin, PASSWORD, work / "client").start()
        await client.wait_joined(room, bot_user, 60)
        await client.command(room, "!ping", bot_user, timeout=60)

        warm_page_cache(work / "data")
        bare_times, bot_times = [], []
        for round_ in range(1, rounds + 1):
            fresh_repo(template, work / "bare-repo", work / "bare-cache")
            bare = await asyncio.to_thread(
                bare_backup, work / "data", restic_env(work / "bare-repo", password_file, work / "bare-cache"))
            fresh_repo(template, work / "bot-repo", state / "restic-cache")
            via_bot, line = await bot_backup(client, room, bot_user)
            bare_times.append(bare)
            bot_times.append(via_bot)
            print(f"round {round_}: bare restic {bare:6.2f} s   !backup now {via_bot:6.2f} s   "
                  f"ratio {via_bot / bare:.3f}   ({line})", flush=True)
        await client.stop()

        bare_med, bot_med = statistics.median(bare_times), statistics.median(bot_times)
        print(f"data: {files} files, {size / 2**20:.0f} MiB; restic {_restic_version()}; {os.cpu_count()} cores")
        print(f"bare `restic backup`      median {bare_med:6.2f} s")
        print(f"`!backup now` to reply    median {bot_med:6.2f} s")
        print(f"ratio {bot_med / bare_med:.3f}x   (goal <= 1.05x)")
    finally:
        if bot_process is not None:
            bot_process.stop()
        synapse.stop()
        shutil.rmtree(work, ignore_errors=True)


def _restic_version() -> str:
    return subprocess.run(["restic", "version"], capture_output=True, text=True).stdout.split()[1]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None, help="where to put the data (default: the temp dir)")
    args = parser.parse_args()
    logging.getLogger("nio").setLevel(logging.ERROR)
    asyncio.run(main(args.size_mb, args.rounds, args.dir))
