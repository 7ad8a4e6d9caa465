"""Real upserts (``INSERT ... ON CONFLICT``) for SQLite and PostgreSQL; never delete+insert."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Table

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["insert_ignore", "insert_or_add", "insert_or_update"]


def _insert(conn: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    # imported here: the PostgreSQL dialect costs 20 ms of start-up a SQLite keep never needs
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def insert_ignore(
    conn: Connection, table: Table, keys: Sequence[str]
) -> sqlite.Insert | postgresql.Insert:
    """Insert rows; a row whose ``keys`` already exist is left as it is."""
    return _insert(conn, table).on_conflict_do_nothing(index_elements=list(keys))


def insert_or_update(
    conn: Connection, table: Table, keys: Sequence[str], update: Sequence[str]
) -> sqlite.Insert | postgresql.Insert:
    """Insert rows; where ``keys`` exist, overwrite the ``update`` columns in place."""
    stmt = _insert(conn, table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}
    )


def insert_or_add(
    conn: Connection, table: Table, keys: Sequence[str], add: Sequence[str]
) -> sqlite.Insert | postgresql.Insert:
    """Insert rows; where ``keys`` exist, add the new values to the ``add`` columns
    (counters kept exact by concurrent writers)."""
    stmt = _insert(conn, table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: table.c[c] + stmt.excluded[c] for c in add}
    )
