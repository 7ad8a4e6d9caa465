"""A bound on what the transfer workers hold in memory at once.

Push and pull run many workers, for the round trips to an object store, not for holding
blobs: each worker first holds, from one budget, the bytes its unit of work keeps in
memory (a pack being built, an upload's buffers), so the process stays within 256 MB
(issue 25) whatever the sizes and however many workers there are.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["IN_FLIGHT", "MemoryBudget"]

IN_FLIGHT = 64 << 20
"""What the workers of one push or pull may hold at once."""


_M_MMAP_THRESHOLD = -3  # from malloc.h
_MMAP_THRESHOLD = 1 << 20
_malloc_bounded = False


def _bound_malloc() -> None:
    """Have glibc map each allocation of 1 MiB or more on its own and unmap it when freed.

    By default the threshold rises to the largest block freed so far, after which blocks
    of that size come from the heaps glibc keeps per thread, and stay there when freed:
    eight workers that each built a 16 MiB pack once held up to 48 MiB apiece ever after
    (a push of 40 MB of small files peaked at 279 MB, 175 MB with the threshold fixed,
    while Python's own allocations peaked at 68 MB). Fixing it is process-wide but only
    changes where large blocks come from. Elsewhere than glibc, nothing is done."""
    global _malloc_bounded
    if _malloc_bounded:
        return
    _malloc_bounded = True
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
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
