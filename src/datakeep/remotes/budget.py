"""A bound on what the transfer workers hold in memory at once.

Push and pull run many workers, for the round trips to an object store, not for holding
blobs: each worker first holds, from one budget, the bytes its unit of work keeps in
memory (a pack being built, an upload's buffers), so the process stays within 256 MB
(issue 25) whatever the sizes and however many workers there are.
"""

from __future__ import annotations

import ctypes
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from typing import TypeVar

from ..backends import Backend, FileBackend

__all__ = ["IN_FLIGHT", "IN_FLIGHT_FILES", "MemoryBudget", "in_flight", "in_order"]

_T = TypeVar("_T")
_R = TypeVar("_R")

IN_FLIGHT = 64 << 20
"""What the workers of one push or pull with an object store may hold at once: a few
uploads of 16-40 MiB side by side, for the round trips."""
IN_FLIGHT_FILES = 16 << 20
"""The same with a directory: a copy there is the kernel's, and holds the 8 MiB window
it hashes, so a pack and a copy or a few copies at once keep two cores busy, and the
process stays below the 100 MB that DVC's add peaks at on D1 (issue 25; the command
line's push of D1 to a directory, 64 MiB: 104-108 MB; 32 MiB: 86-105 MB; 16 MiB: 82-83 MB,
as fast: 1.02-1.08 s against 1.09-1.10 s, alternating runs)."""


def in_flight(backend: Backend) -> int:
    """The budget of a transfer with ``backend``."""
    return IN_FLIGHT_FILES if isinstance(backend, FileBackend) else IN_FLIGHT


_M_MMAP_THRESHOLD = -3  # from malloc.h
_MMAP_THRESHOLD = 1 << 20
_M_ARENA_MAX = -8
_ARENA_MAX = 2
_malloc_bounded = False


def _bound_malloc() -> None:
    """Have glibc map each allocation of 1 MiB or more on its own and unmap it when freed,
    and keep the small ones of all threads in two heaps.

    By default the threshold rises to the largest block freed so far, after which blocks
    of that size come from the heaps glibc keeps per thread, and stay there when freed:
    eight workers that each built a 16 MiB pack once held up to 48 MiB apiece ever after
    (a push of 40 MB of small files peaked at 279 MB, 175 MB with the threshold fixed,
    while Python's own allocations peaked at 68 MB). Likewise each worker's heap keeps
    what the small blobs it read (one allocation each, above Python's own allocator's
    512 bytes) left free: a push of 100,000 files of 1 KiB peaked at 251 MB with a heap
    per thread, 183 MB with two. Both settings are process-wide but only change where
    blocks come from. Elsewhere than glibc, nothing is done."""
    global _malloc_bounded
    if _malloc_bounded:
        return
    _malloc_bounded = True
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        libc.mallopt(_M_ARENA_MAX, _ARENA_MAX)
    except (OSError, AttributeError):
        pass


class MemoryBudget:
    """A count of bytes that threads hold, waiting while holding more would pass the
    limit; one asking for more than the limit alone waits until it is the only one."""

    def __init__(self, limit: int) -> None:
        _bound_malloc()
        self._limit = limit
        self._free = limit
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        nbytes = min(nbytes, self._limit)
        with self._changed:
            self._changed.wait_for(lambda: self._free >= nbytes)
            self._free -= nbytes
        try:
            yield
        finally:
            with self._changed:
                self._free += nbytes
                self._changed.notify_all()


def in_order(
    pool: Executor, work: Callable[[_T], _R], items: Iterable[_T], ahead: int
) -> Iterator[_R]:
    """``pool.map(work, items)`` with at most ``ahead`` items handed out and not yet
    consumed: ``map`` submits every item at once and keeps every result until it is
    consumed, which for 100,000 small files is tens of MB of futures and rows."""
    pending: deque[Future[_R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
