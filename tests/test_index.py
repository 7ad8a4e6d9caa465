from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

import datakeep
from datakeep.errors import Busy, IndexFailure, SchemaTooNew
from datakeep.index import IndexDatabase, ensure_schema, metadata
from datakeep.index import engine as engine_module
from datakeep.index.migrate import _MIGRATIONS, HEAD, REVISIONS


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


def test_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    datakeep.init(tmp_path).close()
    con = sqlite3.connect(tmp_path / ".datakeep" / "index.sqlite")
    con.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    con.commit()
    con.close()
    with pytest.raises(SchemaTooNew, match="upgrade datakeep"):
        datakeep.open(tmp_path)


def _open_and_put(path: str, n: int) -> str:
    with datakeep.open(path) as keep:
        return keep.put(f"writer {n}".encode()).digest


def test_many_processes_open_a_new_index_at_once(tmp_path: Path) -> None:
    # keep.json exists but no index yet: every process races to create the schema
    datakeep.init(tmp_path).close()
    (tmp_path / ".datakeep" / "index.sqlite").unlink()
    for extra in ("-wal", "-shm"):
        (tmp_path / ".datakeep" / f"index.sqlite{extra}").unlink(missing_ok=True)
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


def test_postgres_index_is_a_url_away(postgres_url: str, tmp_path: Path) -> None:
    with datakeep.init(tmp_path, index=postgres_url) as keep:
        c = keep.put(b"shared", tags={"where": "pg"})
        (tmp_path / "d").mkdir()
        (tmp_path / "d" / "f").write_text("tree on pg")
        tree = keep.put_tree(tmp_path / "d")
        assert keep.find({"where": "pg"}).items[0].digest == c.digest
        keep.export(tree.digest, tmp_path / "out")
        assert (tmp_path / "out" / "f").read_text() == "tree on pg"
        assert keep.untag(c.digest, "where") == 1
        assert keep.verify_many().ok
