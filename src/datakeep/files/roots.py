"""gc roots of file stores: every file a store names stays."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select

from .schema import entries

__all__ = ["FileRoots"]


class FileRoots:
    """Registered under the ``datakeep.roots`` entry point group (see pyproject)."""

    name = "files"

    def live_digests(self, conn: Connection) -> Iterable[str]:
        return conn.execute(select(entries.c.digest).distinct()).scalars()
