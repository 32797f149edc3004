"""Per-service backups from the catalogue, in-process with the real restic: a service's database dumped
into its snapshot (a real PostgreSQL cluster owned by the test, pg_dump run as the postgres user; a real
SQLite online backup), the dump cleaned up, and a restore into place that stops the units (a recording
systemctl), imports the dump back and runs the service's check afterwards."""
from __future__ import annotations

import shutil
import sqlite3

import pytest

from spbot.features.backup import Backups, BackupSettings, ServiceSettings
from spbot.features.backup.databases import Database, DatabaseError, dump, reimport
from spbot.store import Store
from tests.fakebin import FakeBin, Rule
from tests.fakes.postgres import PostgresCluster, available
from tests.test_restic_adapter import cheapen_key

PASSWORD = "service backups password 7c1e"
needs_restic = pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed")
needs_postgres = pytest.mark.skipif(bool(available()), reason=available() or "ok")


@pytest.fixture(scope="module")
def pg():
    if available():
        pytest.skip(available())
    cluster = PostgresCluster.start()
    yield cluster
    cluster.stop()


def pg_database(pg: PostgresCluster, name: str) -> Database:
    return Database(kind="postgresql", name=name, user="postgres", host=pg.socket_dir, port=pg.port)


def fill_nextcloud(pg: PostgresCluster, name: str) -> None:
    pg.sql(f"CREATE DATABASE {name}")
    pg.sql("CREATE TABLE oc_filecache (fileid serial PRIMARY KEY, path text NOT NULL, size bigint);"
           "INSERT INTO oc_filecache (path, size) SELECT 'files/photo-' || n || '.jpg', n * 1000 "
           "FROM generate_series(1, 500) n;", database=name)


def contents(pg: PostgresCluster, name: str) -> str:
    return pg.sql("SELECT count(*), sum(size), md5(string_agg(path, ',' ORDER BY fileid)) FROM oc_filecache",
                  database=name)


async def test_postgres_dump_and_import_round_trip(pg, tmp_path):
    fill_nextcloud(pg, "roundtrip")
    before = contents(pg, "roundtrip")
    db = pg_database(pg, "roundtrip")
    dumped = await dump(db, tmp_path / "dumps")
    assert dumped.name == "roundtrip.pgdump" and dumped.read_bytes()[:5] == b"PGDMP"
    assert oct(dumped.stat().st_mode & 0o777) == "0o600"
    pg.sql("DELETE FROM oc_filecache WHERE fileid > 10; INSERT INTO oc_filecache (path) VALUES ('new')",
           database="roundtrip")
    assert contents(pg, "roundtrip") != before
    await reimport(db, tmp_path / "dumps")
    assert contents(pg, "roundtrip") == before


async def test_dump_failures_are_clear(pg, tmp_path):
    with pytest.raises(DatabaseError, match=r"pg_dump failed for the PostgreSQL database nosuchdb \(exit 1\).*"
                                            r"does not exist"):
        await dump(pg_database(pg, "nosuchdb"), tmp_path)
    with pytest.raises(DatabaseError, match="the snapshot holds no dump"):
        await reimport(pg_database(pg, "nosuchdb"), tmp_path / "empty")
    with pytest.raises(DatabaseError, match="does not exist"):
        await dump(Database(kind="sqlite", path=tmp_path / "missing.db"), tmp_path / "d")


async def test_sqlite_online_backup_and_put_back(tmp_path):
    live = tmp_path / "vw" / "db.sqlite3"
    live.parent.mkdir()
    with sqlite3.connect(live) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE ciphers (id INTEGER PRIMARY KEY, data TEXT)")
        db.executemany("INSERT INTO ciphers (data) VALUES (?)", [(f"secret {n}",) for n in range(100)])
    writer = sqlite3.connect(live)               # a writer keeps the database open (WAL) during the dump
    writer.execute("INSERT INTO ciphers (data) VALUES ('while dumping')")
    writer.commit()
    spec = Database(kind="sqlite", path=live)
    dumped = await dump(spec, tmp_path / "dumps")
    writer.execute("DELETE FROM ciphers")
    writer.commit()
    writer.close()
    await reimport(spec, tmp_path / "dumps")
    assert dumped.exists() and not live.with_name("db.sqlite3-wal").exists()   # the old WAL went with it
    with sqlite3.connect(live) as db:
        assert db.execute("SELECT count(*) FROM ciphers").fetchone() == (101,)


@needs_restic
async def test_a_service_backup_holds_its_dump_and_a_restore_imports_it(pg, tmp_path):
    from spbot.system.restic import LocalRepository, Restic
    repo = tmp_path / "repo"
    await Restic(LocalRepository(path=repo), PASSWORD, cache_dir=tmp_path / "cache").init()
    cheapen_key(repo, PASSWORD)
    (tmp_path / "password").write_text(PASSWORD + "\n")
    bins = FakeBin(tmp_path)
    bins.add("systemctl", [Rule(match=["**"])])
    data = tmp_path / "nextcloud"
    (data / "config").mkdir(parents=True)
    (data / "config" / "config.php").write_text("<?php $CONFIG = ['dbname' => 'nextcloud'];\n")
    fill_nextcloud(pg, "nextcloud")
    before = contents(pg, "nextcloud")
    settings = BackupSettings.model_validate({
        "repository": {"kind": "local", "path": str(repo)}, "password": {"file": str(tmp_path / "password")},
        "systemctl": str(bins.dir / "systemctl"), "cache_dir": str(tmp_path / "cache"), "host": "testhost"})
    store = await Store(tmp_path / "state" / "spbot.db").open()
    backups = Backups(settings, tmp_path / "state", store)
    checks = []

    async def check() -> str:
        checks.append(contents(pg, "nextcloud"))
        return "✅ nextcloud: HTTP 200"

    backups.extra["nextcloud"] = ServiceSettings(paths=[data], units=["phpfpm-nextcloud"],
                                                 database=pg_database(pg, "nextcloud"))
    backups.after_restore["nextcloud"] = check
    [outcome] = await backups.run(["nextcloud"])
    assert outcome.ok, outcome.error
    assert not backups.dump_dir("nextcloud").exists()                     # cleaned up after the snapshot
    [snapshot] = await backups.snapshots("nextcloud")
    assert "service:nextcloud" in snapshot.tags
    assert sorted(snapshot.paths) == sorted([str(data), str(backups.dump_dir("nextcloud"))])

    pg.sql("DELETE FROM oc_filecache WHERE fileid % 2 = 0", database="nextcloud")
    (data / "config" / "config.php").write_text("broken\n")
    report = await backups.restore_into_place("latest", "nextcloud")
    assert contents(pg, "nextcloud") == before and checks == [before]
    assert (data / "config" / "config.php").read_text().startswith("<?php")
    assert report.database == "the PostgreSQL database nextcloud was imported from the snapshot's dump"
    assert report.health == "✅ nextcloud: HTTP 200" and report.warnings == []
    assert [c.argv for c in bins.calls("systemctl")] == [["stop", "--", "phpfpm-nextcloud.service"],
                                                        ["start", "--", "phpfpm-nextcloud.service"]]
    assert not backups.dump_dir("nextcloud").exists()
    tags = {s.short_id: s.tags for s in await backups.snapshots("nextcloud")}
    assert any("reason:pre-restore" in t for t in tags.values())          # the replaced data was kept
    await store.close()


async def test_a_failed_dump_makes_no_snapshot(tmp_path):
    settings = BackupSettings.model_validate({"repository": {"kind": "local", "path": str(tmp_path / "r")}})
    backups = Backups(settings, tmp_path / "state", None)
    spec = ServiceSettings(paths=[tmp_path], database=Database(kind="sqlite", path=tmp_path / "nope.db"))
    from spbot.features.backup.model import Outcome
    outcome = Outcome("vault", "manual")
    assert not await backups._dump("vault", spec, "vault", outcome, None)
    assert "the database dump failed, so no snapshot was made" in outcome.error


@needs_restic
async def test_a_container_service_is_stopped_by_docker_during_its_restore(tmp_path):
    from spbot.devsandbox.service_world import ServiceWorld
    from spbot.features.backup import Stopper
    from spbot.features.services.enabled import ServiceConfig, resolve
    from spbot.features.services.state import Controller
    from spbot.system.restic import LocalRepository, Restic
    repo = tmp_path / "repo"
    await Restic(LocalRepository(path=repo), PASSWORD, cache_dir=tmp_path / "cache").init()
    cheapen_key(repo, PASSWORD)
    (tmp_path / "password").write_text(PASSWORD + "\n")
    world = ServiceWorld(tmp_path / "world")
    world.install()
    world.container("forgejo")
    data = tmp_path / "forgejo"
    (data / "data").mkdir(parents=True)
    with sqlite3.connect(data / "data" / "forgejo.db") as db:
        db.execute("CREATE TABLE repository (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO repository (name) VALUES (?)", [("dotfiles",), ("recipes",)])
    spec = resolve("forgejo", ServiceConfig(containers=["forgejo"], data_paths=[data],
                                            database={"kind": "sqlite", "path": str(data / "data/forgejo.db")}))
    control = Controller(str(world.bins.dir), 10, 10)
    settings = BackupSettings.model_validate({
        "repository": {"kind": "local", "path": str(repo)}, "password": {"file": str(tmp_path / "password")},
        "cache_dir": str(tmp_path / "cache"), "host": "testhost"})
    store = await Store(tmp_path / "state" / "spbot.db").open()
    backups = Backups(settings, tmp_path / "state", store)
    backups.extra["forgejo"] = ServiceSettings(paths=spec.data_paths, units=spec.restore_stops, database=spec.database)
    backups.stoppers["forgejo"] = Stopper("container(s) forgejo", lambda: control.act(spec, "stop"),
                                          lambda: control.act(spec, "start"))
    [outcome] = await backups.run(["forgejo"])
    assert outcome.ok, outcome.error
    with sqlite3.connect(data / "data" / "forgejo.db") as db:
        db.execute("DELETE FROM repository")
    world.bins.clear()
    report = await backups.restore_into_place("latest", "forgejo")
    with sqlite3.connect(data / "data" / "forgejo.db") as db:
        assert [r[0] for r in db.execute("SELECT name FROM repository ORDER BY id")] == ["dotfiles", "recipes"]
    assert [c.argv for c in world.bins.calls("docker") if c.argv[0] in ("stop", "start")] == \
        [["stop", "forgejo"], ["start", "forgejo"]]
    assert report.units == ["container(s) forgejo"] and report.warnings == []
    assert report.database == f"the SQLite {data / 'data/forgejo.db'} was imported from the snapshot's dump"
    await store.close()
