"""Reading the caller's files and streams safely: open a regular file once, read it
whole or in chunks, and notice a file that changed while it was read."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from ..errors import DatakeepError, InvalidInput, InvalidPath, NotFound
from .model import CHUNK

__all__ = ["check_unchanged", "chunks", "read_whole", "source_file"]


def chunks(source: Iterable[bytes] | BinaryIO) -> Iterator[bytes | bytearray | memoryview]:
    read = getattr(source, "read", None)
    if read is not None:
        while chunk := read(CHUNK):
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise InvalidInput("put_stream() needs a binary file object")
            yield chunk
        return
    if isinstance(source, str | bytes):
        raise InvalidInput("put_stream() takes an iterable of bytes or a binary file object")
    for chunk in source:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise InvalidInput(f"put_stream() got a {type(chunk).__name__} chunk, not bytes")
        if chunk:
            yield chunk


@contextlib.contextmanager
def source_file(
    path: str | os.PathLike[str], expected: os.stat_result | None
) -> Iterator[tuple[int, os.stat_result]]:
    """A regular file to store, open, with its stat (``expected``, else read now); failures
    to read it become the user's errors (:class:`NotFound`, :class:`InvalidPath`,
    :class:`InvalidInput`), while a failure to store stays a :class:`StorageError`."""
    try:
        # O_NONBLOCK: a FIFO is refused below instead of waiting for a writer
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            before = os.fstat(fd) if expected is None else expected
            if not stat.S_ISREG(before.st_mode):
                what = "a directory" if stat.S_ISDIR(before.st_mode) else "not a regular file"
                raise InvalidPath(f"{os.fspath(path)} is {what}")
            yield fd, before
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise NotFound(f"no such file: {os.fspath(path)}") from None
    except IsADirectoryError:
        raise InvalidPath(f"{os.fspath(path)} is a directory") from None
    except PermissionError as exc:
        raise InvalidInput(f"cannot read {os.fspath(path)}: permission denied") from exc
    except OSError as exc:
        if isinstance(exc, DatakeepError):  # storing failed, or the bytes were not as expected
            raise
        raise InvalidInput(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from exc


def read_whole(fd: int, size: int) -> bytes:
    """A file expected to hold ``size`` bytes, whole: one read of one byte more, which
    comes back short at the end of the file (or long: the file is longer than expected);
    only a read that ends early for another reason needs more."""
    data = os.read(fd, size + 1)
    if len(data) >= size:
        return data
    parts = [data]
    while chunk := os.read(fd, CHUNK):
        parts.append(chunk)
    return b"".join(parts)


def check_unchanged(fd: int, before: os.stat_result, path: str | os.PathLike[str]) -> None:
    """After reading: still the same file (inode), with the size and mtime it had."""
    after = os.fstat(fd)
    if (after.st_ino, after.st_size, after.st_mtime_ns) != (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    ):
        raise InvalidInput(f"{os.fspath(path)} changed while it was being stored; try again")
