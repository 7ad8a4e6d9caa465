"""The stat cache: skip re-hashing files that have not changed since they were stored.

An entry maps a file's identity and change stamps, (device, inode, size, mtime_ns,
ctime_ns), to its digest. The cache is per machine (inodes mean nothing elsewhere), so it
lives beside the keep in ``.datakeep/cache/stat.sqlite`` and never in a shared index.

The racy-timestamp rule, as git's index: a file may change again after it was looked at
without its stamps changing, if the change falls in the same timestamp granule as the
stamps read. So an entry is trusted only if its newest stamp (mtime or ctime) is older,
by the filesystem's timestamp granularity, than the moment its snapshot was taken: the
``checked_ns`` every row holds, read from the clock before the file's stat (earlier than
git's "when the index was written", so never less safe). Any change made after that
moment gets a stamp in a later granule, different from the one cached. A put of files a
pipeline wrote moments before is trusted next time; only a file still being written as
the put began is hashed again, and trusted once that fresh entry is.

The granularity (:func:`racy_window_ns`) is measured: on a local filesystem whose stamps
come from this kernel's clock it is the coarsest power of ten (or FAT's 2 s) that the
stamp itself is a multiple of, plus :data:`CLOCK_SLACK_NS` for the kernel's coarse clock;
elsewhere (network filesystems, FUSE, anything unknown) it is :data:`RACY_NS`, which
also bounds every window, so ``RACY_NS = 0`` turns the rule off.

A second table remembers, per directory, the tree last stored from it with a fingerprint
of every entry's path and stat: an unchanged directory is then re-put without looking up
its files one by one (100,000 files: one query instead of 200).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["CLOCK_SLACK_NS", "RACY_NS", "StatCache", "racy_window_ns"]

RACY_NS = 2_020_000_000
"""The window where the granularity is unknown, and the most any entry gets: FAT's 2 s
stamps plus the clock slack; on a network filesystem the server's clock stamps the files,
and it must be within this of ours."""
CLOCK_SLACK_NS = 20_000_000
"""A file's stamps come from the kernel's coarse clock (``current_time()``), which is
updated once per tick and so lags the fine clock that ``time.time_ns()`` reads by up to
one jiffy: 4 ms at HZ=250, 10 ms at HZ=100. A change made just after the snapshot can
thus be stamped up to a tick before it; two ticks of HZ=100 cover that. (Kernels with
multigrain timestamps, 6.13 and later, stamp from the fine clock when it matters.)"""
_BATCH = 500

# Filesystems whose stamps come from this machine's kernel clock, at a granularity the
# stamps themselves show (ns on ext4, xfs, btrfs, tmpfs; 1 s on ext4 with small inodes or
# ext3; 10 ms on exFAT; 2 s on FAT). Any other (NFS, SMB, FUSE, 9p...) gets RACY_NS.
_LOCAL_FILESYSTEMS = frozenset(
    {
        "bcachefs",
        "btrfs",
        "exfat",
        "ext2",
        "ext3",
        "ext4",
        "f2fs",
        "hfsplus",
        "jfs",
        "msdos",
        "nilfs2",
        "ntfs",
        "ntfs3",
        "overlay",
        "ramfs",
        "reiserfs",
        "tmpfs",
        "vfat",
        "xfs",
        "zfs",
    }
)
_MOUNTINFO = "/proc/self/mountinfo"
_local_devices: dict[int, bool] = {}


def _read_mountinfo(path: str = _MOUNTINFO) -> dict[int, bool]:
    """device number -> whether its filesystem is local (see _LOCAL_FILESYSTEMS)."""
    found: dict[int, bool] = {}
    try:
        with open(path) as f:
            for line in f:
                # id parent major:minor root mount-point options [optional...] - type ...
                fields, _, rest = line.partition(" - ")
                major, _, minor = fields.split()[2].partition(":")
                fstype = rest.split(" ", 1)[0]
                dev = os.makedev(int(major), int(minor))
                found[dev] = found.get(dev, True) and fstype in _LOCAL_FILESYSTEMS
    except (OSError, ValueError, IndexError):
        pass
    return found


def _is_local(dev: int) -> bool:
    if dev not in _local_devices:
        # mounted since last read (or a btrfs subvolume, whose device no mount names)
        _local_devices.update(_read_mountinfo())
        _local_devices.setdefault(dev, False)
    return _local_devices[dev]


def _granule_ns(stamp_ns: int) -> int:
    """The coarsest granularity ``stamp_ns`` is consistent with: never finer than the
    filesystem's own, whose stamps are all multiples of it."""
    if stamp_ns % 1000:
        return 1  # the common case on ext4, xfs, btrfs, tmpfs
    if stamp_ns % 2_000_000_000 == 0:
        return 2_000_000_000
    granule = 1000
    while granule < 1_000_000_000 and stamp_ns % (granule * 10) == 0:
        granule *= 10
    return granule


def racy_window_ns(dev: int, stamp_ns: int) -> int:
    """How much older than a snapshot an entry's newest stamp ``stamp_ns`` (of a file on
    device ``dev``) must be for a later change to show in its stamps."""
    if not _is_local(dev):
        return RACY_NS
    return min(RACY_NS, _granule_ns(stamp_ns) + CLOCK_SLACK_NS)


def _racy(dev: int, mtime_ns: int, ctime_ns: int, checked_ns: int) -> bool:
    stamp = max(mtime_ns, ctime_ns)
    return stamp + racy_window_ns(dev, stamp) >= checked_ns


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
                    # trusted only if both stamps are a granule older than the snapshot
                    if not digest.startswith(prefix) or _racy(dev, mtime_ns, ctime_ns, checked_ns):
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
        """Remember digests of files whose stat was taken after ``checked_ns`` (the clock
        read before the scan), before hashing: the snapshot time of the racy rule."""
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
        devices: Iterable[int] = (),
    ) -> None:
        """Remember the tree of ``root`` if its newest entry (``newest_ns``, the latest
        mtime or ctime) had settled when the scan began at ``checked_ns``, by the racy
        rule of the filesystem holding ``root`` and of any other ``devices`` its entries
        are on."""
        db = self._connect()
        if db is None:
            return
        try:
            every = {os.stat(root).st_dev, *devices}
        except OSError:
            return
        if any(_racy(dev, newest_ns, newest_ns, checked_ns) for dev in every):
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
