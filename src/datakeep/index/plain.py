"""The embedded index through the standard library's ``sqlite3``, for readers that must
not pay for importing SQLAlchemy (150-200 ms here, more than their whole answer).

Such a reader may use a connection only while the index has exactly the schema this
version knows and the keep's algorithm; :func:`connect_plain` checks both and answers None
otherwise, and the caller then takes the full path (which upgrades an older index, and
reports any error as usual).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .revisions import HEAD

__all__ = ["LOCK_TIMEOUT_MS", "connect_plain"]

LOCK_TIMEOUT_MS = 5000
"""How long a write waits for SQLite's lock (the full path's ``LOCK_TIMEOUT_S``)."""


def connect_plain(index: Path, algorithm: str, writable: bool = False) -> sqlite3.Connection | None:
    """A connection to the SQLite index file ``index`` (read-only unless ``writable``;
    then in autocommit mode, each write transaction begun by the caller), or None if the
    file is absent, unreadable, of another schema revision or another algorithm."""
    if not index.is_file():
        return None
    mode = "rw" if writable else "ro"
    try:
        db = sqlite3.connect(f"{index.as_uri()}?mode={mode}", uri=True, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        db.execute(f"PRAGMA busy_timeout = {LOCK_TIMEOUT_MS}")
        if writable:  # as the full path's engine sets them (engine.py)
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
        revision = db.execute("SELECT version_num FROM alembic_version").fetchall()
        stored = db.execute("SELECT value FROM keep_meta WHERE key = 'algorithm'").fetchall()
    except sqlite3.Error:
        db.close()
        return None
    if revision != [(HEAD,)] or stored != [(algorithm,)]:
        db.close()
        return None
    return db
