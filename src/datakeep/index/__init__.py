"""The index: SQLAlchemy Core schema, engines for SQLite and PostgreSQL, migrations.

Names are imported on first use: :mod:`.revisions` and the readers that use the standard
library's ``sqlite3`` must not load SQLAlchemy just by importing this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import IndexDatabase, translated
    from .lease import Leases
    from .migrate import ensure_schema, recorded_algorithm
    from .schema import (
        aliases,
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
    "aliases",
    "contents",
    "ensure_schema",
    "inline_blobs",
    "keep_meta",
    "metadata",
    "pins",
    "placements",
    "recorded_algorithm",
    "remotes",
    "tags",
    "translated",
]

_LAZY = {
    "IndexDatabase": "engine",
    "translated": "engine",
    "Leases": "lease",
    "ensure_schema": "migrate",
    "recorded_algorithm": "migrate",
    **dict.fromkeys(
        [
            "aliases",
            "contents",
            "inline_blobs",
            "keep_meta",
            "metadata",
            "pins",
            "placements",
            "remotes",
            "tags",
        ],
        "schema",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
