"""Answer the put of an unchanged directory without loading the index library.

Putting a directory again when nothing in it changed is the commonest put of all (a
pipeline step run again), and its answer needs only the stat cache and one row of the
index. Importing SQLAlchemy alone takes longer here (150-200 ms) than the whole answer. So
for an embedded keep, the command line asks :func:`unchanged_tree` first: it reads the
SQLite index with the standard library, read-only, and answers only when the index has
exactly the schema this version knows, uses the keep's algorithm and holds the tree the
stat cache remembers for the directory as it is now. Any other case (a PostgreSQL index,
a changed directory, a tree gone from the keep, any error) gives None, and the caller does
the full put, which reports errors as usual.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .errors import DatakeepError
from .keepdir import read_config, stat_cache_path
from .scan import fingerprint, scan
from .schema_revisions import HEAD
from .statcache import StatCache

__all__ = ["unchanged_tree"]

# The same row the full put looks up: the tree, recorded as one, with its primary copy.
_HOLDS_TREE = (
    "SELECT 1 FROM contents JOIN placements ON placements.digest = contents.digest"
    " WHERE contents.digest = ? AND contents.kind = 'tree' AND placements.location = 'primary'"
)


def unchanged_tree(keep_dir: Path, path: str | os.PathLike[str]) -> str | None:
    """The digest of the tree the keep already holds for directory ``path`` unchanged,
    or None when only a full put can tell."""
    try:
        config = read_config(keep_dir)
        index = config["index"]
        root = Path(path)
        if "://" in index or root.is_symlink() or not root.is_dir():
            return None
        algorithm = config["algorithm"]
        stamp = fingerprint(scan(root), algorithm)
        cache = StatCache(stat_cache_path(keep_dir))
        try:
            known = cache.tree_of(os.path.realpath(root), stamp)
        finally:
            cache.close()
    except (DatakeepError, OSError, KeyError, TypeError):
        return None
    if known is None or not _index_holds_tree(keep_dir / index, known[0], algorithm):
        return None
    return known[0]


def _index_holds_tree(index: Path, digest: str, algorithm: str) -> bool:
    if not index.is_file():
        return False
    try:
        db = sqlite3.connect(f"{index.as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return False
    try:
        revision = db.execute("SELECT version_num FROM alembic_version").fetchall()
        stored = db.execute("SELECT value FROM keep_meta WHERE key = 'algorithm'").fetchall()
        if revision != [(HEAD,)] or stored != [(algorithm,)]:
            return False
        return db.execute(_HOLDS_TREE, (digest,)).fetchone() is not None
    except sqlite3.Error:
        return False
    finally:
        db.close()
