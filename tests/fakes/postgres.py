"""A real PostgreSQL cluster owned by the test: Debian's postgresql server binaries, initdb into a
temporary directory as the `postgres` system user (initdb refuses root), a Unix socket in that directory
and a free port, trust authentication. Used where a real pg_dump/pg_restore round trip is the proof.

    with PostgresCluster.start() as pg:
        pg.sql("CREATE DATABASE nextcloud")
        pg.sql("SELECT 1", database="nextcloud")
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def server_bin() -> Path | None:
    """The newest installed server's bin directory (/usr/lib/postgresql/<version>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def available() -> str:
    """Why a cluster cannot run here, or '' when it can."""
    if server_bin() is None:
        return "PostgreSQL's server is not installed (apt-get install postgresql)"
    if shutil.which("pg_dump") is None or shutil.which("psql") is None:
        return "pg_dump or psql is not installed"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "there is no postgres system user"
    if os.geteuid() != 0:
        return "the cluster runs as the postgres user: the test needs root (runuser)"
    return ""


class PostgresCluster:
    def __init__(self, base: Path):
        self.base = Path(base)
        self.data = self.base / "data"
        self.socket_dir = str(self.base)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]

    @classmethod
    def start(cls) -> "PostgresCluster":
        """In a directory of its own under /tmp: pytest's temporary directories are closed to other users."""
        pg = cls(Path(tempfile.mkdtemp(prefix="spbot-pg-")))
        user = pwd.getpwnam("postgres")
        os.chown(pg.base, user.pw_uid, user.pw_gid)
        binary = server_bin()
        pg._as_postgres([str(binary / "initdb"), "-D", str(pg.data), "-A", "trust", "-U", "postgres",
                         "--no-sync"])
        pg._as_postgres([str(binary / "pg_ctl"), "-D", str(pg.data), "-l", str(pg.base / "log"), "-w", "-o",
                         f"-p {pg.port} -k {pg.socket_dir} -c listen_addresses='' -c fsync=off", "start"])
        return pg

    def stop(self) -> None:
        self._as_postgres([str(server_bin() / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                          check=False)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "PostgresCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _as_postgres(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=check, capture_output=True,
                              text=True, timeout=120, cwd="/")

    def sql(self, statement: str, database: str = "postgres") -> str:
        """psql's unaligned, tuples-only output of one statement."""
        done = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.socket_dir,
                               "-p", str(self.port), "-U", "postgres", "-d", database, "-c", statement],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"psql: {done.stderr.strip()}")
        return done.stdout.strip()
