"""The index: SQLAlchemy Core schema, engines for SQLite and PostgreSQL, migrations."""

from .engine import IndexDatabase, translated
from .migrate import ensure_schema
from .schema import contents, keep_meta, metadata, placements, tags

__all__ = [
    "IndexDatabase",
    "contents",
    "ensure_schema",
    "keep_meta",
    "metadata",
    "placements",
    "tags",
    "translated",
]
