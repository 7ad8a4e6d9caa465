"""Verification of stored bytes: every read path re-hashes what it returns and raises
:class:`~datakeep.errors.IntegrityError` rather than hand out wrong bytes."""

from __future__ import annotations

import errno
import io
import mmap
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from blake3 import blake3

from ..digest import Hasher, new_hasher
from ..errors import IntegrityError, NotFound
from .model import CHUNK

__all__ = ["VerifiedReader", "check_bytes", "drain_verified", "hash_file", "verify_file"]

# A file is hashed through a window of this many bytes mapped at a time: its pages count
# in the resident set while mapped (as a cgroup sees it), so a whole 300 MB file mapped
# at once is 300 MB more per file hashed. A multiple of the page size, as a mapping's
# offset must be. (300 MB: 31 ms windowed on every core, 35 ms mapped whole; 18 MB peak
# against 300 MB; read into a buffer instead, 80 ms.)
WINDOW = 8 << 20


class VerifiedReader(io.RawIOBase):
    """Reads a blob and checks its digest and size before handing out the last byte."""

    def __init__(self, raw: BinaryIO, digest: str, size: int) -> None:
        self._raw = raw
        self._digest = digest
        self._size = size
        self._algorithm, _, self._hex = digest.partition(":")
        self._hasher: Hasher = new_hasher(self._algorithm)
        self._seen = 0
        if size == 0:
            self._finish()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        remaining = self._size - self._seen
        # ask for one byte more than remains so trailing garbage is noticed
        n: int | None = self._raw.readinto(view[: remaining + 1])  # type: ignore[attr-defined]
        if n is None:  # non-blocking source with nothing ready
            return 0
        if n == 0:
            if self._seen != self._size:
                raise IntegrityError(
                    f"{self._digest} is truncated: {self._seen} of {self._size} bytes stored"
                )
            return 0
        self._seen += n
        if self._seen > self._size:
            raise IntegrityError(f"{self._digest} is longer than its recorded {self._size} bytes")
        self._hasher.update(view[:n])
        if self._seen == self._size:
            self._finish()
        return n

    def _finish(self) -> None:
        actual = self._hasher.hexdigest()
        if actual != self._hex:
            raise IntegrityError(
                f"{self._digest} is corrupted: its stored bytes hash to {self._algorithm}:{actual}"
            )

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def drain_verified(
    raw: BinaryIO,
    digest: str,
    size: int,
    write: Callable[[memoryview], object] | None = None,
) -> None:
    """Read ``raw`` to its end, verified, passing each chunk to ``write`` if given."""
    reader = VerifiedReader(raw, digest, size)
    buffer = bytearray(min(size, CHUNK) + 1)
    view = memoryview(buffer)
    while n := reader.readinto(buffer):
        if write is not None:
            write(view[:n])


def check_bytes(data: bytes, digest: str, size: int) -> None:
    """:class:`IntegrityError` unless ``data`` is the content ``digest`` of ``size`` bytes."""
    if len(data) != size:
        raise IntegrityError(f"{digest} has {len(data)} bytes stored, not {size}")
    algorithm, _, expected = digest.partition(":")
    hasher = new_hasher(algorithm)
    hasher.update(data)
    if hasher.hexdigest() != expected:
        raise IntegrityError(
            f"{digest} is corrupted: its stored bytes hash to {algorithm}:{hasher.hexdigest()}"
        )


def verify_file(path: Path, digest: str, size: int) -> None:
    """Check that the file ``path`` holds exactly the content ``digest`` of ``size`` bytes."""
    try:
        actual_size = os.stat(path).st_size
    except FileNotFoundError:
        raise NotFound(f"blob of {digest} is missing from the store") from None
    if actual_size < size:
        raise IntegrityError(f"{digest} is truncated: {actual_size} of {size} bytes stored")
    if actual_size > size:
        raise IntegrityError(f"{digest} is longer than its recorded {size} bytes")
    actual = hash_file(path, digest.partition(":")[0])
    if actual != digest:
        raise IntegrityError(f"{digest} is corrupted: its stored bytes hash to {actual}")


def hash_file(path: str | os.PathLike[str], algorithm: str) -> str:
    """The digest string of a file's bytes, mapped a window at a time (BLAKE3 on every
    core), or read in windows where the file cannot be mapped."""
    hasher: Hasher = (
        blake3(max_threads=blake3.AUTO) if algorithm == "blake3" else new_hasher(algorithm)
    )
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        offset = 0
        while offset < size:
            length = min(WINDOW, size - offset)
            _hash_window(hasher, fd, offset, length)
            offset += length
    finally:
        os.close(fd)
    return f"{algorithm}:{hasher.hexdigest()}"


def _hash_window(hasher: Hasher, fd: int, offset: int, length: int) -> None:
    try:
        with (
            mmap.mmap(fd, length, offset=offset, access=mmap.ACCESS_READ) as mapped,
            memoryview(mapped) as view,
        ):
            hasher.update(view)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENODEV, errno.EACCES, errno.EINVAL):
            raise
    data = os.pread(fd, length, offset)
    while len(data) < length:
        more = os.pread(fd, length - len(data), offset + len(data))
        if not more:
            break
        data += more
    hasher.update(data)
