"""Write transactions straight through the database driver: the hot path of a put.

Recording one blob is three or four rows in one transaction. Through SQLAlchemy's
``Connection`` that transaction cost about 0.15 ms of CPU in pool and transaction events,
compiled-cache lookups and result wrapping, as much as hashing, writing and syncing a
4 KiB blob, and on SQLite most of it was spent holding the write lock that every other
writer waits for. Here the statements are still built by SQLAlchemy Core (the upserts of
:mod:`.upsert`) but compiled once per dialect, and a transaction is the driver's own
BEGIN, executes and COMMIT on a connection from the engine's pool.

On PostgreSQL the same transaction carries the put's shared write lease (:mod:`.lease`),
taken as the transaction's first statement, so a put checks out one connection, not two,
and its round trips are BEGIN, the lease, the inserts and COMMIT.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect

from ..errors import IndexFailure
from .engine import begin_immediate, retrying, translated

if TYPE_CHECKING:
    from sqlalchemy.sql import ClauseElement

    from .engine import IndexDatabase

__all__ = ["DirectConnection", "direct_connection"]

T = TypeVar("T")
# sqlite3 takes named parameters from a dict, as psycopg takes pyformat ones: every
# statement is then executed with the same row dicts SQLAlchemy would be given.
_SQLITE_NAMED = sqlite.dialect(paramstyle="named")


@functools.lru_cache(maxsize=256)
def _compiled(dialect: Dialect, statement: ClauseElement) -> tuple[str, bool]:
    """The SQL text of ``statement`` for ``dialect``, and whether it returns rows."""
    compiled: Any = statement.compile(dialect=dialect)
    writes = compiled.isinsert or compiled.isupdate or compiled.isdelete
    return compiled.string, bool(compiled.returning) or not writes


class DirectConnection:
    """A driver connection from the index's pool, for short write transactions.

    It is checked out when first used, not when made: a put on SQLite holds none while it
    stores a large file (its lease is a file lock), one on PostgreSQL takes it for the lease.
    """

    def __init__(self, db: IndexDatabase) -> None:
        self.db = db
        self.sqlite = db.dialect == "sqlite"
        self._dialect = _SQLITE_NAMED if self.sqlite else db.engine.dialect
        self._errors: tuple[type[BaseException], ...] = (db.engine.dialect.loaded_dbapi.Error,)
        self._raw: Any = None
        self._prologue: tuple[str, str, Mapping[str, Any]] | None = None
        self.usable = True

    @property
    def dbapi_connection(self) -> Any:
        if self._raw is None:
            with translated("connecting to the index"):
                self._raw = self.db.engine.raw_connection()
        return self._raw.dbapi_connection

    def execute(
        self, statement: ClauseElement, rows: Sequence[Mapping[str, Any]]
    ) -> list[tuple[Any, ...]]:
        """Execute a Core statement for each of ``rows``; the rows it returns, if any."""
        sql, returns = _compiled(self._dialect, statement)
        cursor = self.dbapi_connection.cursor()
        try:
            if not returns:
                if len(rows) == 1:  # psycopg's executemany sets up a pipeline even for one
                    cursor.execute(sql, rows[0])
                else:
                    cursor.executemany(sql, rows)
                return []
            returned: list[tuple[Any, ...]] = []
            for row in rows:  # executemany cannot return rows on either driver
                cursor.execute(sql, row)
                returned.extend(cursor.fetchall())
            return returned
        finally:
            cursor.close()

    def statement(self, action: str, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """Run one statement outside any transaction; its first value, if it returns one."""
        with translated(action, self._errors):
            connection = self.dbapi_connection
            if self.sqlite:  # sqlite3 runs in autocommit mode here (see engine.py)
                row = connection.execute(sql, params or {}).fetchone()
            else:
                connection.autocommit = True
                try:
                    row = connection.execute(sql, params).fetchone()
                finally:
                    connection.autocommit = False
            return None if row is None else row[0]

    @contextmanager
    def opened_with(self, action: str, sql: str, params: Mapping[str, Any]) -> Iterator[None]:
        """Open the PostgreSQL transaction that :meth:`transact` will commit, starting with
        ``sql`` (which must be safe to repeat), now and again on every retry. Whatever
        the transaction holds, such as a transaction-level lock, is held from here until
        it commits; if it never does, it is rolled back on leaving."""
        self._prologue = (action, sql, params)
        try:
            self._begin()
            yield
        finally:
            self._prologue = None
            if self.usable and self._in_transaction():
                self._rollback()

    def _in_transaction(self) -> bool:
        if self.sqlite:
            return bool(self.dbapi_connection.in_transaction)
        return bool(self.dbapi_connection.info.transaction_status.name != "IDLE")

    def _begin(self) -> None:
        """Start a write transaction (psycopg begins one with its first statement)."""
        if self.sqlite:
            begin_immediate(self.dbapi_connection)
        elif self._prologue is not None and not self._in_transaction():
            action, sql, params = self._prologue
            with translated(action, self._errors):
                self.dbapi_connection.execute(sql, params)

    def transact(self, action: str, work: Callable[[DirectConnection], T]) -> T:
        """Run ``work`` in one write transaction, committed on success; like
        :meth:`IndexDatabase.transact`, again if PostgreSQL chose it as a deadlock's loser."""
        return retrying(action, lambda: self._once(work), self._errors)

    def _once(self, work: Callable[[DirectConnection], T]) -> T:
        if not self.usable:
            raise IndexFailure("index connection lost after a failed rollback")
        connection = self.dbapi_connection
        try:
            self._begin()
            result = work(self)
            if self.sqlite:
                connection.execute("COMMIT")
            else:
                connection.commit()
            return result
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        try:
            if self.sqlite:
                if self._in_transaction():
                    self.dbapi_connection.execute("ROLLBACK")
            else:
                self.dbapi_connection.rollback()
        except Exception:
            self.discard()  # a connection that cannot roll back is not used again

    def discard(self) -> None:
        """Close the connection instead of returning it to the pool (which also ends any
        PostgreSQL session lock it holds)."""
        if self.usable and self._raw is not None:
            self.usable = False
            self._raw.invalidate()

    def close(self) -> None:
        """Return the connection to the pool, if one was checked out."""
        if self._raw is not None:
            self._raw.close()
            self._raw = None


@contextmanager
def direct_connection(db: IndexDatabase) -> Iterator[DirectConnection]:
    """A :class:`DirectConnection` on ``db``, its connection returned to the pool afterwards."""
    direct = DirectConnection(db)
    try:
        yield direct
    finally:
        direct.close()
