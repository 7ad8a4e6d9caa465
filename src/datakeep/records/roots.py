"""gc roots of records: each record's current tree (its older versions go)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select

from .schema import records

__all__ = ["RecordRoots"]


class RecordRoots:
    """Registered under the ``datakeep.roots`` entry point group (see pyproject)."""

    name = "records"

    def live_digests(self, conn: Connection) -> Iterable[str]:
        return conn.execute(select(records.c.tree).where(records.c.tree.is_not(None))).scalars()
