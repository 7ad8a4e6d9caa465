"""Opening a keep for the web view so that serving it cannot write to it.

The view only reads, but "only reads" is a promise of its code; here it is a property of
its connections as well. Every connection to the index is made read-only as it opens:
SQLite with ``PRAGMA query_only`` (a connection opened read-write, so it still removes
its write-ahead log files when it closes, as a ``mode=ro`` one would not), PostgreSQL with
``default_transaction_read_only``. An index that would need a migration is refused
rather than migrated, since opening a keep normally upgrades it.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine, event

from ..errors import IndexFailure
from ..index import IndexDatabase
from ..index.migrate import HEAD, current_revision
from ..keep import Keep
from ..keepdir import find_keep_dir, index_url, read_config

__all__ = ["make_read_only", "open_read_only"]


def make_read_only(engine: Engine) -> None:
    """Make every connection ``engine`` opens from now on refuse writes (the pool is
    emptied first, so none opened before is handed out again)."""
    engine.dispose()
    dialect = engine.dialect.name

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if dialect == "sqlite":
            cursor.execute("PRAGMA query_only = ON")
        else:
            cursor.execute("SET default_transaction_read_only = on")
            dbapi_connection.commit()
        cursor.close()


def open_read_only(start: str | os.PathLike[str] = ".") -> Keep:
    """The keep found from ``start`` (as ``datakeep.open``), whose index refuses writes."""
    keep_dir = find_keep_dir(start)
    probe = IndexDatabase(index_url(keep_dir, read_config(keep_dir)["index"]))
    make_read_only(probe.engine)
    try:
        with probe.read("checking the schema") as conn:
            revision = current_revision(conn)
    finally:
        probe.dispose()
    if revision != HEAD:
        raise IndexFailure(
            f"the index of {keep_dir} is at schema revision {revision!r}, not {HEAD!r}: the "
            "web view never writes, so run any datakeep command there once (e.g. "
            "'datakeep ls --limit 1') to upgrade it, or upgrade datakeep"
        )
    # at HEAD, opening reads only (the schema check and the recorded algorithm)
    keep = Keep(keep_dir)
    make_read_only(keep.db.engine)
    return keep
