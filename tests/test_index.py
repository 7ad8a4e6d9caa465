from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy import inspect as sa_inspect

import datakeep
from datakeep.digest import hash_bytes
from datakeep.errors import Busy, IndexFailure, SchemaTooNew
from datakeep.index import IndexDatabase, Leases, ensure_schema, keep_meta, metadata
from datakeep.index import engine as engine_module
from datakeep.index.direct import DirectConnection, direct_connection
from datakeep.index.migrate import _MIGRATIONS, HEAD, REVISIONS, current_revision
from datakeep.index.upsert import insert_ignore
from datakeep.keep import Keep

from .conftest import new_postgres_schema


def test_revision_list_matches_the_migration_scripts() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    scripts = ScriptDirectory.from_config(config)
    ordered = [s.revision for s in reversed(list(scripts.walk_revisions()))]
    assert tuple(ordered) == REVISIONS
    assert scripts.get_current_head() == HEAD


def _schema_diff(url: str) -> list[object]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    # features declare their tables on import: all of them, so that this test does not
    # depend on which other test modules happened to import them first
    import datakeep.files.schema
    import datakeep.records.schema
    import datakeep.runs.schema
    import datakeep.workspaces.schema  # noqa: F401

    db = IndexDatabase(url)
    ensure_schema(db)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    db.dispose()
    return [d for d in diff if "alembic_version" not in str(d)]


def test_migrations_build_exactly_the_declared_schema(tmp_path: Path) -> None:
    assert _schema_diff(f"sqlite:///{tmp_path / 'i.sqlite'}") == []


def test_migrations_build_exactly_the_declared_schema_on_postgres(postgres_url: str) -> None:
    assert _schema_diff(postgres_url) == []


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    datakeep.init(tmp_path).close()
    con = sqlite3.connect(tmp_path / ".datakeep" / "index.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def _set_revision(keep: datakeep.Keep, revision: str) -> None:
    with keep.db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


def test_newer_schema_is_refused_with_a_clear_error(tmp_path: Path, index_url: str | None) -> None:
    with datakeep.init(tmp_path, index=index_url) as keep:
        _set_revision(keep, "9999_from_the_future")
    with pytest.raises(SchemaTooNew, match="upgrade datakeep"):
        datakeep.open(tmp_path)


def test_keep_of_an_older_version_is_migrated_forward(
    tmp_path: Path, index_url: str | None
) -> None:
    from alembic import command
    from alembic.config import Config

    with datakeep.init(tmp_path, index=index_url) as keep:
        c = keep.put(b"from an older datakeep", tags={"era": "0001"})
        # turn the index back into what the first release wrote
        with keep.db.engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(_MIGRATIONS))
            config.attributes["connection"] = conn
            command.downgrade(config, REVISIONS[0])
            assert current_revision(conn) == REVISIONS[0]
            assert "pins" not in sa_inspect(conn).get_table_names()
    with datakeep.open(tmp_path) as keep:
        with keep.db.read() as conn:
            assert current_revision(conn) == HEAD
        assert keep.get(c.digest) == b"from an older datakeep"
        assert keep.info(c.digest).tags == {"era": "0001"}
        keep.pin(c.digest)  # the new table works
        assert keep.pins() == [c.digest]


def _open_and_put(path: str, n: int) -> str:
    with datakeep.open(path) as keep:
        return keep.put(f"writer {n}".encode()).digest


def test_many_processes_open_a_new_index_at_once(tmp_path: Path, index_url: str | None) -> None:
    # keep.json exists but the index is empty: every process races to create the schema
    with datakeep.init(tmp_path, index=index_url) as keep, keep.db.engine.begin() as conn:
        for table in ("alembic_version", *reversed(metadata.sorted_tables)):
            conn.execute(text(f"DROP TABLE {getattr(table, 'name', table)}"))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(6) as pool:
        digests = pool.starmap(_open_and_put, [(str(tmp_path), i) for i in range(12)])
    with datakeep.open(tmp_path) as keep:
        assert sorted(c.digest for c in keep.find(limit=100).items) == sorted(set(digests))


def test_writer_waits_for_the_lock_instead_of_failing(tmp_path: Path) -> None:
    keep = datakeep.init(tmp_path)
    holder = sqlite3.connect(
        tmp_path / ".datakeep" / "index.sqlite", isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    c = keep.put(b"patient writer")
    assert time.monotonic() - started >= 0.4
    assert keep.get(c.digest) == b"patient writer"
    release.join()
    holder.close()
    keep.close()


def test_lock_held_too_long_is_busy_and_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datakeep.init(tmp_path).close()
    monkeypatch.setattr(engine_module, "LOCK_TIMEOUT_S", 0.3)
    keep = datakeep.open(tmp_path)
    holder = sqlite3.connect(tmp_path / ".datakeep" / "index.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(Busy) as caught:
        keep.put(b"impatient")
    assert isinstance(caught.value, TimeoutError)
    holder.execute("COMMIT")
    holder.close()
    assert keep.find().items == []  # no row; the blob is at most an orphan for gc
    assert keep.put(b"impatient").size == 9
    keep.close()


def test_driver_errors_are_translated(tmp_path: Path) -> None:
    db = IndexDatabase(f"sqlite:///{tmp_path / 'x.sqlite'}")
    with pytest.raises(IndexFailure) as caught, db.read() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    assert "no_such_table" in str(caught.value)
    assert not isinstance(caught.value, Busy)
    db.dispose()


def test_a_put_checks_out_one_index_connection(keep: Keep) -> None:
    # on PostgreSQL the put's write lease rides on the connection that records it
    checkouts: list[object] = []
    event.listen(keep.db.engine, "checkout", lambda *args: checkouts.append(args))
    keep.put(b"one connection", tags={"b": "2", "a": "1"})
    assert len(checkouts) == 1
    assert keep.info(hash_bytes(b"one connection")).tags == {"a": "1", "b": "2"}


_REFUSE_PLACEMENTS = {
    "sqlite": [
        "CREATE TRIGGER refuse BEFORE INSERT ON placements "
        "BEGIN SELECT RAISE(ABORT, 'placement refused by the test'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'placement refused by the test'; END $$",
        "CREATE TRIGGER refuse BEFORE INSERT ON placements FOR EACH ROW EXECUTE FUNCTION refuse()",
    ],
}


def test_a_failed_put_records_nothing_and_releases_its_connection_and_lease(
    keep: Keep,
) -> None:
    with keep.db.write() as conn:
        for sql in _REFUSE_PLACEMENTS[keep.db.dialect]:
            conn.execute(text(sql))
    with pytest.raises(IndexFailure, match="placement refused by the test") as caught:
        keep.put(b"refused", tags={"k": "v"})
    assert not isinstance(caught.value, Busy)
    # the contents row inserted before the failure was rolled back with it
    assert keep.find().items == [] and not keep.exists(hash_bytes(b"refused"))
    with keep.db.write() as conn:
        conn.execute(
            text("DROP TRIGGER refuse" + (" ON placements" * (keep.db.dialect != "sqlite")))
        )
    # the lease was released (gc takes the exclusive one) and the pool works on
    assert keep.gc(grace_s=0).swept == []
    assert keep.put(b"refused", tags={"k": "v"}).tags == {"k": "v"}
    assert keep.fsck().ok


def test_gc_waits_for_a_put_from_its_blob_to_its_row(
    keep: Keep, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob_written, resume = threading.Event(), threading.Event()
    sync_blobs = keep.store.sync_blobs

    def pausing_sync() -> None:  # the put has stored its blob and not yet recorded it
        sync_blobs()
        blob_written.set()
        assert resume.wait(10)

    monkeypatch.setattr(keep.store, "sync_blobs", pausing_sync)
    put = threading.Thread(target=keep.put, args=(b"in flight",))
    put.start()
    assert blob_written.wait(10)
    collector_holds = threading.Event()

    def collector() -> None:
        with keep.store.leases.exclusive():
            # the put's row is there: gc sees the blob as live, never as an orphan
            collector_holds.set()
            assert keep.exists(hash_bytes(b"in flight"))

    gc = threading.Thread(target=collector)
    gc.start()
    assert not collector_holds.wait(0.5)  # held off while the put is in flight
    resume.set()
    put.join(10)
    assert collector_holds.wait(10)  # and let in once it committed
    gc.join(10)
    monkeypatch.undo()
    assert keep.gc(grace_s=0).swept == [hash_bytes(b"in flight")]  # untagged: garbage now


def _advisory_locks_held(direct: DirectConnection) -> int:
    sql = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
    return int(direct.dbapi_connection.execute(sql).fetchone()[0])


def test_a_direct_write_chosen_as_a_deadlock_loser_runs_again(postgres_url: str) -> None:
    import psycopg

    url = new_postgres_schema(postgres_url)
    db = IndexDatabase(url)
    ensure_schema(db)
    rows = [{"key": "x", "value": "direct"}, {"key": "y", "value": "direct"}]
    a_holds_x, attempts = threading.Event(), []

    def work(direct: DirectConnection) -> None:
        # the write lease is a lock of the transaction: taken again after the rollback
        assert _advisory_locks_held(direct) == 1
        attempts.append(1)
        # this session detects the deadlock first, so it is the one PostgreSQL aborts
        direct.dbapi_connection.execute("SET LOCAL deadlock_timeout = '50ms'")
        direct.execute(insert_ignore("postgresql", keep_meta, ["key"]), rows[:1])
        a_holds_x.set()
        direct.execute(insert_ignore("postgresql", keep_meta, ["key"]), rows[1:])

    with psycopg.connect(url) as other:  # a second session in the same schema
        other.execute("SET deadlock_timeout = '10s'")
        other.execute("INSERT INTO keep_meta (key, value) VALUES ('y', 'other')")
        with direct_connection(db) as direct, Leases(db).shared(on=direct):
            thread = threading.Thread(target=direct.transact, args=("deadlocking", work))
            thread.start()
            assert a_holds_x.wait(10)
            other.execute("INSERT INTO keep_meta (key, value) VALUES ('x', 'other')")
            other.commit()
            thread.join(10)
            assert _advisory_locks_held(direct) == 0  # and released by the commit
    assert len(attempts) == 2  # aborted once, then committed
    with db.read() as conn:
        values = dict(
            conn.execute(text("SELECT key, value FROM keep_meta WHERE key IN ('x', 'y')")).all()
        )
    assert values == {"x": "other", "y": "other"}
    db.dispose()


def _postgres_keep(tmp_path: Path, postgres_url: str) -> tuple[Keep, list[int]]:
    """A keep on a fresh schema, and the server process ids of the connections it opens."""
    keep = datakeep.init(tmp_path, index=new_postgres_schema(postgres_url))
    keep.db.engine.dispose()
    pids: list[int] = []
    event.listen(keep.db.engine, "connect", lambda conn, _: pids.append(conn.info.backend_pid))
    return keep, pids


def test_a_pooled_connection_is_pinged_only_after_sitting_idle(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keep, _ = _postgres_keep(tmp_path, postgres_url)
    pings: list[object] = []
    do_ping = keep.db.engine.dialect.do_ping

    def counted_ping(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return do_ping(dbapi_connection)

    monkeypatch.setattr(keep.db.engine.dialect, "do_ping", counted_ping)
    for i in range(5):
        keep.put(f"in a loop {i}".encode())
    assert pings == []  # a connection returned a moment ago is alive
    monkeypatch.setattr(engine_module, "_PING_AFTER_IDLE_S", 0.05)
    time.sleep(0.1)
    keep.put(b"after a pause")
    assert len(pings) == 1
    keep.close()


def test_a_connection_the_server_closed_while_idle_is_replaced(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    keep, pids = _postgres_keep(tmp_path, postgres_url)

    def server_closes_the_pool() -> None:  # as a restart or an idle timeout would
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.2)

    keep.put(b"before")
    # used again at once, the dead connection is not pinged: that put fails cleanly...
    monkeypatch.setattr(engine_module, "_PING_AFTER_IDLE_S", 3600.0)
    server_closes_the_pool()
    with pytest.raises(IndexFailure):
        keep.put(b"unlucky")
    assert keep.put(b"next").size == 4  # ...and the pool has dropped it
    # after sitting idle it is pinged, found dead and replaced before the put uses it
    monkeypatch.setattr(engine_module, "_PING_AFTER_IDLE_S", 0.0)
    server_closes_the_pool()
    assert keep.put(b"after").size == 5
    assert not keep.exists(hash_bytes(b"unlucky")) and keep.fsck().ok
    keep.close()


def test_a_put_refused_before_its_row_leaves_no_lease_behind(
    keep: Keep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "LOCK_TIMEOUT_S", 0.3)
    for _ in range(3):  # more than one pooled connection could hold it
        with pytest.raises(FileNotFoundError):
            keep.put_file(tmp_path / "missing")  # fails after the lease, before the row
    with keep.store.leases.exclusive():  # Busy if any put still held its shared lease
        pass
    assert keep.gc(grace_s=0).swept == [] and keep.find().items == []
