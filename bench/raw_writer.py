"""The work of one ``keep.put`` done with no datakeep code: a reference for the writer figures.

Each put hashes 4 KiB with BLAKE3, writes an anonymous temporary file (``O_TMPFILE``),
links it into its fan-out directory, fsyncs the file and the directory, takes the shared
write lease, and records the contents and placement rows in one transaction: with the
standard library's ``os`` and ``sqlite3``, or ``psycopg``, and nothing else. The keep is
a real one (same schema, same pragmas, same lease), so the rows are exactly what datakeep
would write.

Run at 1 and at 4 processes beside datakeep's own writers, it shows what 4 processes gain
over 1 when no library overhead is left at all. It is not a ceiling for datakeep's ratio:
a slower single writer leaves more waiting for four to overlap (BENCHMARKS.md).
"""

from __future__ import annotations

import fcntl
import functools
import os
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import blake3

INSERT_CONTENT = (
    "INSERT INTO contents (digest, size, kind, created_at) VALUES ({p}, {p}, 'blob', {p}) "
    "ON CONFLICT (digest) DO NOTHING RETURNING digest"
)
INSERT_PLACEMENT = (
    "INSERT INTO placements (digest, location, backend, pointer) "
    "VALUES ({p}, 'primary', 'local', {p}) ON CONFLICT (digest, location) DO NOTHING"
)


def raw_writer(keep_path: str, index: str | None, payloads: list[bytes]) -> None:
    """Put every payload, each durable and recorded before the next starts."""
    meta = Path(keep_path) / ".datakeep"
    objects, tmp_dir = meta / "objects" / "blake3", meta / "objects" / ".tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    put = _sqlite_put(meta) if index is None else _postgres_put(index)
    for data in payloads:
        put(functools.partial(_store, data, objects, tmp_dir))


def _store(data: bytes, objects: Path, tmp_dir: Path) -> tuple[str, int, str]:
    """Write one blob durably into its fan-out directory; (digest, size, pointer)."""
    hexdigest = blake3.blake3(data).hexdigest()
    folder = f"{objects}/{hexdigest[:2]}"
    path = f"{folder}/{hexdigest[2:]}"
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp_dir, os.O_WRONLY | os.O_TMPFILE, 0o444)
        os.write(fd, data)
        os.link(f"/proc/self/fd/{fd}", path, src_dir_fd=fd)  # linkat(AT_SYMLINK_FOLLOW)
        os.close(fd)
        for synced in (path, folder):
            fd = os.open(synced, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
    return f"blake3:{hexdigest}", len(data), f"blake3/{hexdigest[:2]}/{hexdigest[2:]}"


Store = Callable[[], tuple[str, int, str]]


def _sqlite_put(meta: Path) -> Callable[[Store], None]:
    db = sqlite3.connect(meta / "index.sqlite", isolation_level=None, timeout=60)
    db.execute("PRAGMA synchronous = NORMAL")
    lease = f"{meta / 'index.sqlite'}-lease"
    insert_content, insert_placement = (s.format(p="?") for s in (INSERT_CONTENT, INSERT_PLACEMENT))

    def put(store: Store) -> None:
        fd = os.open(lease, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_SH)
        digest, size, pointer = store()
        _begin_immediate(db)
        db.execute(insert_content, (digest, size, time.time())).fetchall()
        db.execute(insert_placement, (digest, pointer))
        db.execute("COMMIT")
        os.close(fd)

    return put


def _begin_immediate(db: sqlite3.Connection) -> None:
    # the same fine polling as datakeep (index/engine.py): SQLite's own busy handler
    # oversleeps a lock that is free most of the time
    db.execute("PRAGMA busy_timeout = 0")
    pause = 50e-6
    while True:
        try:
            db.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError:
            time.sleep(random.uniform(pause / 2, pause))
            pause = min(pause * 2, 0.002)
    db.execute("PRAGMA busy_timeout = 60000")


def _postgres_put(index: str) -> Callable[[Store], None]:
    import psycopg

    conn = psycopg.connect(index)  # a libpq URL, schema chosen by its options
    insert_content, insert_placement = (
        s.format(p="%s") for s in (INSERT_CONTENT, INSERT_PLACEMENT)
    )
    key = 1  # any key: nothing else takes this lease during the benchmark

    def put(store: Store) -> None:
        conn.autocommit = True
        conn.execute("SELECT pg_advisory_lock_shared(%s)", (key,))
        conn.autocommit = False
        digest, size, pointer = store()
        conn.execute(insert_content, (digest, size, time.time())).fetchall()
        conn.execute(insert_placement, (digest, pointer))
        conn.commit()
        conn.autocommit = True
        conn.execute("SELECT pg_advisory_unlock_shared(%s)", (key,))

    return put
