"""Engines for the index: SQLite (embedded default) and PostgreSQL (shared).

Two rules make many writers safe:

* SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
  ``BEGIN IMMEDIATE``: a writer takes the write lock up front and waits for it, instead of
  failing with "database is locked" when a read transaction tries to upgrade.
* Driver errors never leave this module raw: :func:`translated` turns them into
  :class:`~datakeep.errors.Busy` or :class:`~datakeep.errors.IndexFailure`.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, SQLAlchemyError

from ..errors import Busy, IndexFailure, InvalidInput

__all__ = [
    "LOCK_TIMEOUT_S",
    "IndexDatabase",
    "begin_immediate",
    "retrying",
    "translated",
]

T = TypeVar("T")
LOCK_TIMEOUT_S = 60.0
# PostgreSQL aborts one of two transactions that deadlock (40P01) or conflict under
# serializable isolation (40001); the loser must simply run again.
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})
_RETRIES = 8
_WRITE = "datakeep_write"
# A pooled PostgreSQL connection idle for longer is pinged before it is used again.
_PING_AFTER_IDLE_S = 1.0
_RETURNED_AT = "datakeep_returned_at"
# A disk with less free space than this counts as full when SQLite fails to open a file.
_FULL_BELOW = 1 << 20
_BUSY_MARKERS = (
    "database is locked",
    "database table is locked",
    "lock timeout",
    "could not obtain lock",
    "deadlock detected",
    "canceling statement due to lock",
)


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception behind a SQLAlchemy one."""
    return getattr(exc, "orig", None) or exc


def _translate(action: str, driver_error: BaseException) -> IndexFailure:
    text = str(driver_error)
    if "readonly database" in text:  # only a full disk opens the index read-only
        return IndexFailure(
            f"cannot write the index while {action}: no space left on device "
            "(the index is open read-only until some is freed)"
        )
    if any(marker in text.lower() for marker in _BUSY_MARKERS):
        return Busy(
            f"index busy while {action}: other writers held the lock for more "
            f"than {LOCK_TIMEOUT_S:.0f}s"
        )
    return IndexFailure(f"index error while {action}: {text}")


@contextmanager
def translated(action: str, driver_errors: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Re-raise database errors as datakeep errors (the one place that does): SQLAlchemy's,
    and the driver's own ``driver_errors`` where the driver is used directly."""
    try:
        yield
    except DBAPIError as exc:
        raise _translate(action, _driver_error(exc)) from exc
    except SQLAlchemyError as exc:
        raise IndexFailure(f"index error while {action}: {exc}") from exc
    except driver_errors as exc:
        raise _translate(action, exc) from exc


class _ReadOnly(sqlite3.Connection):
    """A connection to an index whose disk is full: the database file read as it is."""


def _open_sqlite(path: str) -> sqlite3.Connection:
    """A connection to the index at ``path``; on a full disk, where SQLite cannot make
    the shared-memory index of its write-ahead log, one that reads the database file as
    it is (immutable), so reading commands still work, if the log holds nothing unsaved."""
    conn = sqlite3.connect(path, timeout=LOCK_TIMEOUT_S, check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # maps the log index
        return conn
    except sqlite3.OperationalError:
        conn.close()
        free = os.statvfs(os.path.dirname(path) or ".")
        if free.f_bavail * free.f_frsize >= _FULL_BELOW:
            raise
    wal = f"{path}-wal"
    if os.path.exists(wal) and os.path.getsize(wal) > 0:
        raise IndexFailure(
            f"no space left on device to open the index {path}: its write-ahead log holds "
            "changes not yet in the database; free some space"
        )
    return sqlite3.connect(
        f"file:{quote(path)}?immutable=1", uri=True, check_same_thread=False, factory=_ReadOnly
    )


def _sqlite_engine(url: str) -> Engine:
    path = str(make_url(url).database)
    engine = create_engine(url, creator=lambda: _open_sqlite(path))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how a transaction starts.
        dbapi_connection.isolation_level = None
        if isinstance(dbapi_connection, _ReadOnly):
            return  # nothing to set: it can only read
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(LOCK_TIMEOUT_S * 1000)}")
        _set_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, record: Any) -> None:
        if isinstance(dbapi_connection, _ReadOnly):
            record.invalidate()  # the next use tries a full connection again: space may be back

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_WRITE, False):
            begin_immediate(conn.connection.dbapi_connection)
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def begin_immediate(dbapi_connection: Any) -> None:
    """Take the write lock, polling finely while another process holds it.

    SQLite's own busy handler sleeps 1, 2, 5, 10, ... ms between tries, so with several
    processes writing, waiters oversleep a lock that is free most of the time (4 writers
    reached 1.35x the throughput of one). Poll from 50 us, doubling up to 2 ms, instead.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout = 0")
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        pause = 50e-6
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except Exception as exc:  # sqlite3.OperationalError; the driver is not imported
                # raised from SQLAlchemy's begin event, so translated() would not see it
                if "locked" not in str(exc):
                    raise IndexFailure(f"index error while starting a write: {exc}") from exc
                if time.monotonic() > deadline:
                    raise Busy(
                        "index busy: other writers held the lock for more than "
                        f"{LOCK_TIMEOUT_S:.0f}s"
                    ) from exc
            time.sleep(random.uniform(pause / 2, pause))
            pause = min(pause * 2, 0.002)
    finally:
        cursor.execute(f"PRAGMA busy_timeout = {int(LOCK_TIMEOUT_S * 1000)}")
        cursor.close()


def _set_wal(cursor: Any) -> None:
    # Switching a brand-new database to WAL needs a moment of exclusive access; when many
    # processes open a new keep at once, wait for it like any other lock.
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except Exception as exc:  # sqlite3.OperationalError; the driver is not imported here
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _postgres_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    # Room for every thread of a busy process to hold a lease and a working connection.
    engine = create_engine(parsed, pool_size=10, max_overflow=40)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # Set here rather than through libpq "options", which the URL may already use
        # (for instance to choose a schema with -csearch_path=...).
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET lock_timeout = {int(LOCK_TIMEOUT_S * 1000)}")
        cursor.close()
        dbapi_connection.commit()
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # A connection that sat in the pool may have been closed by a server restart or an
        # idle timeout, so it is pinged first, as pool_pre_ping would; one returned a
        # moment ago is not: a put in a loop would otherwise spend one of its few round
        # trips on the ping. A failed ping makes the pool connect afresh.
        if time.monotonic() - record.info.get(_RETURNED_AT, 0.0) < _PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"index connection lost while idle: {exc}") from exc

    return engine


def retrying(action: str, once: Callable[[], T], errors: tuple[type[BaseException], ...]) -> T:
    """Run the transaction ``once``, again if the database aborted it only to break a
    deadlock or conflict; ``errors`` (SQLAlchemy's or the driver's) are translated."""
    attempt = 0
    while True:
        try:
            return once()
        except errors as exc:
            retry = getattr(_driver_error(exc), "sqlstate", None) in _RETRY_SQLSTATES
            if retry and attempt < _RETRIES:
                attempt += 1
                time.sleep(random.uniform(0, 0.005 * 2**attempt))
                continue
            with translated(action, errors):
                raise


class IndexDatabase:
    """An engine plus the two kinds of transaction the index uses."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            backend = make_url(url).get_backend_name()
        except SQLAlchemyError as exc:
            raise InvalidInput(f"not a database URL: {url!r}") from exc
        if backend == "sqlite":
            self.engine = _sqlite_engine(url)
        elif backend == "postgresql":
            self.engine = _postgres_engine(url)
        else:
            raise InvalidInput(f"unsupported index database {backend!r}; use sqlite or postgresql")
        self.dialect = backend

    @contextmanager
    def read(self, action: str = "reading") -> Iterator[Connection]:
        """A read transaction (never takes the SQLite write lock)."""
        with translated(action), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self, action: str = "writing") -> Iterator[Connection]:
        """A write transaction, committed on success; waits for the write lock."""
        with translated(action), self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    def transact(self, action: str, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a write transaction, again if the database chose it as the
        loser of a deadlock; so ``work`` must only touch the database."""

        def once() -> T:
            with self.engine.connect() as conn:
                conn.execution_options(**{_WRITE: True})
                with conn.begin():
                    return work(conn)

        return retrying(action, once, (SQLAlchemyError,))

    def dispose(self) -> None:
        self.engine.dispose()
