"""Answer the put of an unchanged directory without loading the index library.

Putting a directory again when nothing in it changed is the commonest put of all (a
pipeline step run again), and its answer needs only the stat cache and one row of the
index. Importing SQLAlchemy alone takes longer here (150-200 ms) than the whole answer. So
for an embedded keep, the command line asks :func:`unchanged_tree` first: it reads the
SQLite index with the standard library, read-only, and answers only when the index has
exactly the schema this version knows, uses the keep's algorithm and holds the tree the
stat cache remembers for the directory as it is now. Any other case (a PostgreSQL index,
a changed directory, a tree gone from the keep, any error) gives no answer, and the caller
does the full put, which reports errors as usual and reuses the reading of the directory
made here.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..errors import DatakeepError
from ..index.plain import connect_plain
from ..keepdir import read_config, stat_cache_path
from .scan import DirectoryScan, scan_directory
from .statcache import StatCache

__all__ = ["Lookup", "look_up", "unchanged_tree"]

# The same row the full put looks up: the tree, recorded as one, with its primary copy.
_HOLDS_TREE = (
    "SELECT 1 FROM contents JOIN placements ON placements.digest = contents.digest"
    " WHERE contents.digest = ? AND contents.kind = 'tree' AND placements.location = 'primary'"
)


@dataclass(frozen=True, slots=True)
class Lookup:
    """What :func:`look_up` found for one directory."""

    digest: str | None
    """The tree the keep holds for the directory as it is now; None if unknown."""
    scanned: DirectoryScan | None
    """The directory as read, for the full put to reuse instead of reading it again."""


def look_up(keep_dir: Path, path: str | os.PathLike[str]) -> Lookup:
    """Whether the keep already holds directory ``path`` unchanged, and the reading of it
    that told (none if it could not be asked here)."""
    try:
        config = read_config(keep_dir)
        index = config["index"]
        root = Path(path)
        if "://" in index or root.is_symlink() or not root.is_dir():
            return Lookup(None, None)
        algorithm = config["algorithm"]
        scanned = scan_directory(root, algorithm)
        cache = StatCache(stat_cache_path(keep_dir))
        try:
            known = cache.tree_of(scanned.root, scanned.fingerprint)
        finally:
            cache.close()
    except (DatakeepError, OSError, KeyError, TypeError):
        return Lookup(None, None)
    if known is None or not _index_holds_tree(keep_dir / index, known[0], algorithm):
        return Lookup(None, scanned)
    return Lookup(known[0], scanned)


def unchanged_tree(keep_dir: Path, path: str | os.PathLike[str]) -> str | None:
    """The digest of the tree the keep already holds for directory ``path`` unchanged,
    or None when only a full put can tell."""
    return look_up(keep_dir, path).digest


def _index_holds_tree(index: Path, digest: str, algorithm: str) -> bool:
    db = connect_plain(index, algorithm)
    if db is None:
        return False
    try:
        return db.execute(_HOLDS_TREE, (digest,)).fetchone() is not None
    except sqlite3.Error:
        return False
    finally:
        db.close()
