"""Bring an index to the schema this version of datakeep knows, safely under concurrency.

Opening an up-to-date index costs one small query: Alembic (0.3 s to import here) is only
imported when a migration is really due. Migrations run inside one transaction that holds
the database's write lock (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL),
so when several processes open a new keep at once, one migrates and the others wait, then
find the work done.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError

from ..errors import SchemaTooNew
from .engine import IndexDatabase, translated
from .revisions import HEAD, REVISIONS
from .schema import keep_meta
from .upsert import insert_ignore

__all__ = ["HEAD", "REVISIONS", "current_revision", "ensure_schema", "recorded_algorithm"]

_ADVISORY_LOCK_KEY = 0x6461_7461_6B65_6570 & 0x7FFF_FFFF_FFFF_FFFF  # "datakeep"
_MIGRATIONS = Path(__file__).with_name("migrations")


def current_revision(conn: Connection) -> str | None:
    """The stored revision, or None for an empty database."""
    savepoint = conn.begin_nested() if conn.in_transaction() else None
    try:
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    except DBAPIError:
        # no alembic_version table yet
        if savepoint is not None:
            savepoint.rollback()
        else:
            conn.rollback()
        return None
    if savepoint is not None:
        savepoint.commit()
    return None if row is None else str(row[0])


def _check_known(revision: str | None, url: str) -> None:
    if revision is not None and revision not in REVISIONS:
        raise SchemaTooNew(
            f"the index at {url} has schema revision {revision!r}, which this datakeep "
            "does not know; upgrade datakeep to open it"
        )


def ensure_schema(db: IndexDatabase) -> None:
    """Create or migrate the schema to :data:`HEAD`; refuse a newer unknown schema."""
    with db.read("checking the schema") as conn:
        revision = current_revision(conn)
    _check_known(revision, db.url)
    if revision == HEAD:
        return
    with db.write("migrating the schema") as conn:
        if db.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_KEY})
        # re-read under the lock: another process may have migrated meanwhile
        revision = current_revision(conn)
        _check_known(revision, db.url)
        if revision == HEAD:
            return
        with translated("migrating the schema"):
            _run_alembic(conn)


def recorded_algorithm(db: IndexDatabase, algorithm: str) -> str:
    """The digest algorithm the index records; a new index records ``algorithm`` (a
    concurrent opener may win, so the stored value is read back)."""
    query = select(keep_meta.c.value).where(keep_meta.c.key == "algorithm")
    with db.read("reading the keep's algorithm") as conn:
        stored = conn.execute(query).scalar()
    if stored is None:
        with db.write("recording the keep's algorithm") as conn:
            conn.execute(
                insert_ignore(conn, keep_meta, ["key"]), [{"key": "algorithm", "value": algorithm}]
            )
            stored = conn.execute(query).scalar_one()
    return str(stored)


def _run_alembic(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = conn
    command.upgrade(config, HEAD)
