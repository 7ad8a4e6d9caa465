"""The index: SQLAlchemy Core schema, engines for SQLite and PostgreSQL, migrations."""

from .engine import IndexDatabase, translated
from .lease import Leases
from .migrate import ensure_schema
from .schema import (
    contents,
    inline_blobs,
    keep_meta,
    metadata,
    pins,
    placements,
    remotes,
    tags,
)

__all__ = [
    "IndexDatabase",
    "Leases",
    "contents",
    "ensure_schema",
    "inline_blobs",
    "keep_meta",
    "metadata",
    "pins",
    "placements",
    "remotes",
    "tags",
    "translated",
]
