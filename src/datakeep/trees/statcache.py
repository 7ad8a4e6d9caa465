"""The stat cache: skip re-hashing files that have not changed since they were stored.

An entry maps a file's identity and change stamps, (device, inode, size, mtime_ns,
ctime_ns), to its digest. The cache is per machine (inodes mean nothing elsewhere), so it
lives beside the keep in ``.datakeep/cache/stat.sqlite`` and never in a shared index.

The racy-timestamp rule (as git's index): a file modified within :data:`RACY_NS` of the
moment it was hashed may be modified again without its mtime changing, because file
timestamps tick coarsely (a kernel tick on ext4, 2 s on FAT). Such an entry is not
trusted; the file is hashed again next time, and once it is old enough the fresh entry is.

A second table remembers, per directory, the tree last stored from it with a fingerprint
of every entry's path and stat: an unchanged directory is then re-put without looking up
its files one by one (100,000 files: one query instead of 200).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

__all__ = ["RACY_NS", "StatCache"]

RACY_NS = 2_000_000_000
_BATCH = 500


class StatCache:
    """Digests of files by (dev, ino, size, mtime_ns, ctime_ns); a cache, never the truth.

    A broken or locked cache costs speed, not correctness: its errors mean "not cached".
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        # one connection shared by the threads of an AsyncKeep: keep their transactions apart
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(
                    self.path, timeout=5, check_same_thread=False, isolation_level=None
                )
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = OFF")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS stat (dev INTEGER, ino INTEGER, size INTEGER,"
                    " mtime_ns INTEGER, ctime_ns INTEGER, digest TEXT, checked_ns INTEGER,"
                    " PRIMARY KEY (dev, ino)) WITHOUT ROWID"
                )
                db.execute(
                    "CREATE TABLE IF NOT EXISTS tree (root TEXT PRIMARY KEY,"
                    " fingerprint BLOB, digest TEXT, size INTEGER) WITHOUT ROWID"
                )
            except sqlite3.Error:
                return None
            self._db = db
        return self._db

    def lookup(self, stats: Sequence[os.stat_result], algorithm: str) -> list[str | None]:
        """The trusted digest of each file, or None where it must be hashed."""
        results: list[str | None] = [None] * len(stats)
        db = self._connect()
        if db is None or not stats:
            return results
        by_inode: dict[tuple[int, int], list[int]] = {}
        for i, st in enumerate(stats):
            by_inode.setdefault((st.st_dev, st.st_ino), []).append(i)
        prefix = algorithm + ":"
        with self._lock:
            try:
                self._lookup(db, stats, by_inode, prefix, results)
            except sqlite3.Error:
                return [None] * len(stats)
        return results

    @staticmethod
    def _lookup(
        db: sqlite3.Connection,
        stats: Sequence[os.stat_result],
        by_inode: dict[tuple[int, int], list[int]],
        prefix: str,
        results: list[str | None],
    ) -> None:
        for dev in {d for d, _ in by_inode}:
            inodes = [ino for d, ino in by_inode if d == dev]
            for start in range(0, len(inodes), _BATCH):
                part = inodes[start : start + _BATCH]
                rows = db.execute(
                    "SELECT ino, size, mtime_ns, ctime_ns, digest, checked_ns FROM stat "
                    f"WHERE dev = ? AND ino IN ({','.join('?' * len(part))})",
                    (dev, *part),
                ).fetchall()
                for ino, size, mtime_ns, ctime_ns, digest, checked_ns in rows:
                    # trusted only if both stamps are well before the hash was taken
                    if not digest.startswith(prefix) or (
                        max(mtime_ns, ctime_ns) + RACY_NS >= checked_ns
                    ):
                        continue
                    for i in by_inode[(dev, ino)]:
                        st = stats[i]
                        if (st.st_size, st.st_mtime_ns, st.st_ctime_ns) == (
                            size,
                            mtime_ns,
                            ctime_ns,
                        ):
                            results[i] = digest

    def store(self, entries: Sequence[tuple[os.stat_result, str]], checked_ns: int) -> None:
        """Remember digests of files whose stat was taken at ``checked_ns`` before hashing."""
        db = self._connect()
        if db is None or not entries:
            return
        rows = [
            (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest, checked_ns)
            for st, digest in entries
        ]
        with self._lock:
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                db.execute("COMMIT")
            except sqlite3.Error:
                if db.in_transaction:
                    db.rollback()

    def tree_of(self, root: str, fingerprint: bytes) -> tuple[str, int] | None:
        """(digest, size) of the tree last stored from ``root``, if the directory's
        fingerprint (every entry's path and stat) is still the same."""
        db = self._connect()
        if db is None:
            return None
        with self._lock:
            try:
                row = db.execute(
                    "SELECT digest, size FROM tree WHERE root = ? AND fingerprint = ?",
                    (root, fingerprint),
                ).fetchone()
            except sqlite3.Error:
                return None
        return None if row is None else (str(row[0]), int(row[1]))

    def remember_tree(
        self,
        root: str,
        fingerprint: bytes,
        digest: str,
        size: int,
        newest_ns: int,
        checked_ns: int,
    ) -> None:
        """Remember the tree of ``root`` if its newest entry (``newest_ns``, the latest
        mtime or ctime) had settled when the scan began at ``checked_ns``."""
        db = self._connect()
        if db is None or newest_ns + RACY_NS >= checked_ns:
            return
        # not remembered on error: the next put looks its files up one by one
        with self._lock, contextlib.suppress(sqlite3.Error):
            db.execute(
                "INSERT OR REPLACE INTO tree VALUES (?, ?, ?, ?)", (root, fingerprint, digest, size)
            )

    def forget(self, digests: set[str]) -> None:
        """Drop the entries naming ``digests`` (no longer in the keep), so the files are
        hashed and stored again by the next put instead of being vouched for."""
        db = self._connect()
        if db is None or not digests:
            return
        with self._lock:
            try:
                db.executemany("DELETE FROM stat WHERE digest = ?", [(d,) for d in digests])
                # a remembered tree may name a forgotten file: look them up afresh
                db.execute("DELETE FROM tree")
            except sqlite3.Error:
                # a cache that cannot forget must not vouch at all: start afresh
                self.close()
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
