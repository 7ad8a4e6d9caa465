"""Write leases: writers share the keep, the garbage collector has it alone.

A put stores blobs first and records them in the index afterwards. Between the two, the
blob is unreferenced, and a blob that already existed counts as stored without being
written again. A sweep in that window would leave an index row without its blob. So
every operation that stores or makes content live holds a *shared* lease from its first
blob to its last row, and gc (and ``fsck --repair-index``) holds the *exclusive* lease
while it decides and deletes. Readers need no lease.

The lease lives where every writer of the keep can see it:

* PostgreSQL: an advisory lock (shared or exclusive) keyed by the schema, so keeps in
  different schemas of one database do not block each other. ``lock_timeout`` bounds the
  wait. A single put takes it as a lock of the transaction that records the put (taken
  before the blob is written, dropped by the commit: two round trips fewer than a
  session lock); everything else holds a session lock.
* SQLite: ``flock`` on a file beside the database (a SQLite keep has one machine).

A wait longer than :data:`~datakeep.index.engine.LOCK_TIMEOUT_S` raises
:class:`~datakeep.errors.Busy`. Leases nest: a thread that holds one takes no other.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import make_url

from ..errors import Busy
from . import engine as engine_module
from .engine import IndexDatabase, translated

if TYPE_CHECKING:
    from .direct import DirectConnection

__all__ = ["Leases"]

_WAITING = "waiting for the write lease"


class Leases:
    """Shared and exclusive write leases on one index."""

    def __init__(self, db: IndexDatabase) -> None:
        self.db = db
        self._held = threading.local()
        self._lock_file: Path | None = None
        if db.dialect == "sqlite":
            database = make_url(db.url).database
            if database and database != ":memory:":
                self._lock_file = Path(f"{database}-lease")
        self._advisory_key: int | None = None

    @contextmanager
    def shared(self, on: DirectConnection | None = None) -> Iterator[None]:
        """Held by writers; many at once. On PostgreSQL the lease is taken on the
        connection ``on`` when one is given (a put then needs no second connection), as a
        lock of the transaction that ``on`` commits next: it ends with that commit."""
        with self._lease(exclusive=False, on=on):
            yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Held by gc and index repair; waits for every writer to finish."""
        with self._lease(exclusive=True):
            yield

    @contextmanager
    def _lease(self, exclusive: bool, on: DirectConnection | None = None) -> Iterator[None]:
        if getattr(self._held, "depth", 0):
            self._held.depth += 1
            try:
                yield
            finally:
                self._held.depth -= 1
            return
        acquire: Callable[[bool], AbstractContextManager[None]]
        if self.db.dialect == "postgresql":
            acquire = self._advisory if on is None else functools.partial(self._advisory_on, on)
        elif self._lock_file is not None:
            acquire = self._flock
        else:
            acquire = _nothing
        with acquire(exclusive):
            self._held.depth = 1
            try:
                yield
            finally:
                self._held.depth = 0

    @contextmanager
    def _flock(self, exclusive: bool) -> Iterator[None]:
        assert self._lock_file is not None
        fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            deadline = time.monotonic() + engine_module.LOCK_TIMEOUT_S
            pause = 0.001
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise Busy(
                            "the keep stayed locked by "
                            + ("writers" if exclusive else "gc or an index repair")
                            + f" for more than {engine_module.LOCK_TIMEOUT_S:.0f}s; try again"
                        ) from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.05)
            yield
        finally:
            os.close(fd)  # closing the descriptor drops the lock

    @contextmanager
    def _advisory(self, exclusive: bool) -> Iterator[None]:
        suffix = "" if exclusive else "_shared"
        # lock_timeout bounds the wait; translated() turns its expiry into Busy
        with translated(_WAITING):
            # autocommit: a session lock needs no transaction, and this saves two round trips
            conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                key = self._key(lambda: conn.execute(text("SELECT current_schema()")).scalar_one())
                conn.execute(text(f"SELECT pg_advisory_lock{suffix}(:k)"), {"k": key})
            except BaseException:
                conn.close()
                raise
        try:
            yield
        finally:
            try:
                conn.execute(text(f"SELECT pg_advisory_unlock{suffix}(:k)"), {"k": key})
            except Exception:
                # a session that cannot unlock is closed, which unlocks it
                conn.invalidate()
            conn.close()

    @contextmanager
    def _advisory_on(self, direct: DirectConnection, exclusive: bool) -> Iterator[None]:
        # A transaction-level lock in the transaction that will record the put: no round
        # trips to take and drop a session lock, and it ends with that transaction, so
        # the put must do whatever needs the lease before it commits.
        suffix = "" if exclusive else "_shared"
        key = self._key(lambda: direct.statement(_WAITING, "SELECT current_schema()"))
        with direct.opened_with(
            _WAITING, f"SELECT pg_advisory_xact_lock{suffix}(%(k)s)", {"k": key}
        ):
            yield

    def _key(self, current_schema: Callable[[], str]) -> int:
        if self._advisory_key is None:
            schema = current_schema()
            digest = hashlib.blake2b(f"datakeep lease {schema}".encode(), digest_size=8)
            self._advisory_key = int.from_bytes(digest.digest(), "big", signed=True)
        return self._advisory_key


@contextmanager
def _nothing(exclusive: bool) -> Iterator[None]:
    yield
