"""Real upserts (``INSERT ... ON CONFLICT``) for SQLite and PostgreSQL; never delete+insert."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Table

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.sql.dml import Insert

__all__ = ["insert_ignore", "insert_or_add", "insert_or_update"]


def _insert(dialect: str, table: Table) -> sqlite.Insert | postgresql.Insert:
    # imported here: the PostgreSQL dialect costs 20 ms of start-up a SQLite keep never needs
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def insert_ignore(
    conn: Connection | str, table: Table, keys: Sequence[str], returning: Sequence[str] = ()
) -> Insert:
    """Insert rows; a row whose ``keys`` already exist is left as it is. ``returning``
    names columns to return from the rows really inserted."""
    return _statement(_dialect(conn), table, tuple(keys), "ignore", (), tuple(returning))


def insert_or_update(
    conn: Connection | str, table: Table, keys: Sequence[str], update: Sequence[str]
) -> Insert:
    """Insert rows; where ``keys`` exist, overwrite the ``update`` columns in place."""
    return _statement(_dialect(conn), table, tuple(keys), "update", tuple(update), ())


def insert_or_add(
    conn: Connection | str, table: Table, keys: Sequence[str], add: Sequence[str]
) -> Insert:
    """Insert rows; where ``keys`` exist, add the new values to the ``add`` columns
    (counters kept exact by concurrent writers)."""
    return _statement(_dialect(conn), table, tuple(keys), "add", tuple(add), ())


def _dialect(conn: Connection | str) -> str:
    """The dialect name of a connection, or the name itself (where the statement is run
    through the driver directly: index/direct.py)."""
    return conn if isinstance(conn, str) else conn.dialect.name


# Built once per shape: a statement is immutable, and building one (then its cache key)
# cost about a tenth of a one-blob put's CPU.
@functools.lru_cache(maxsize=256)
def _statement(
    dialect: str,
    table: Table,
    keys: tuple[str, ...],
    action: str,
    columns: tuple[str, ...],
    returning: tuple[str, ...],
) -> Insert:
    stmt = _insert(dialect, table)
    if action == "ignore":
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    elif action == "update":
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns}
        )
    else:
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: table.c[c] + stmt.excluded[c] for c in columns}
        )
    if returning:
        return stmt.returning(*(table.c[c] for c in returning))
    return stmt
