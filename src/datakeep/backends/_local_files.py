"""The local backend's files before they are published: temporary files (anonymous where
the filesystem allows it) and staged writes, and the system calls that make them durable.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import os
import secrets
from typing import TYPE_CHECKING, Any, BinaryIO

from ..copying import copy_hashed
from ..errors import StorageError

if TYPE_CHECKING:
    from ..digest import Hasher
    from ._local import LocalBackend

__all__ = [
    "ANONYMOUS_TEMP_FLAG",
    "READ_ONLY",
    "StagedLocalFile",
    "TempFile",
    "fsync_path",
    "new_temp_name",
    "storage_error",
    "syncfs",
    "unlink_quietly",
]

READ_ONLY = 0o444
# A large staged blob starts its writeback every this many bytes: the disk then works while
# the rest is hashed and copied (1 GB of D1: 0.65-0.89 s to disk instead of 0.88-1.01 s).
_WRITEBACK_EVERY = 16 << 20

# Temporary names: a random tag per process, then a counter; no random bytes per blob.
# A forked child draws its own tag. next() on a count is atomic under the GIL.
_process_tag = secrets.token_hex(8)
_tmp_numbers = itertools.count()


def _new_process_tag() -> None:
    global _process_tag
    _process_tag = secrets.token_hex(8)


os.register_at_fork(after_in_child=_new_process_tag)


def new_temp_name() -> str:
    """A name for a temporary file, unique among this keep's writers."""
    return f"{_process_tag}-{next(_tmp_numbers)}"


# An O_TMPFILE file gets its name by linkat() of its /proc/self/fd entry (open(2)).
ANONYMOUS_TEMP_FLAG = getattr(os, "O_TMPFILE", 0) if os.path.isdir("/proc/self/fd") else 0
# What open(O_TMPFILE) fails with where the filesystem or kernel lacks it
_NO_ANONYMOUS_TEMP = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL}


def storage_error(action: str, key: str, exc: OSError) -> StorageError:
    return StorageError(f"cannot {action} blob {key!r}: {exc.strerror or exc}")


class TempFile:
    """A new read-only file for a blob, not yet visible under any key.

    Anonymous (``O_TMPFILE``) where the filesystem allows it: a file without a name adds no
    entry to the one ``.tmp`` directory that every writer shares (four writers spent 10%
    of their time on that directory's lock), needs no unlink, and vanishes with a killed
    writer. Elsewhere it is a named file in ``.tmp``, which gc removes when a killed
    writer left it behind.
    """

    def __init__(self, backend: LocalBackend, access: int) -> None:
        self._backend = backend
        self.name: str | None = None
        if backend._anonymous_temp:
            try:
                self.fd = os.open(
                    backend._tmp_dir, access | ANONYMOUS_TEMP_FLAG | os.O_CLOEXEC, READ_ONLY
                )
                return
            except OSError as exc:
                if exc.errno not in _NO_ANONYMOUS_TEMP:
                    raise
                backend._anonymous_temp = False
        self.name = backend._temp_path()
        self.fd = os.open(self.name, access | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, READ_ONLY)

    def link_as(self, path: str) -> None:
        """Give the file the name ``path``; FileExistsError if it is taken."""
        if self.name is not None:
            os.link(self.name, path)
        else:
            # os.link calls linkat(AT_SYMLINK_FOLLOW) only when given a directory fd; the
            # source path is absolute, so which fd does not matter
            os.link(f"/proc/self/fd/{self.fd}", path, src_dir_fd=self.fd)

    def publish(self, key: str) -> bool:
        """Link the finished file in as ``key``; False if ``key`` exists already."""
        try:
            return self._backend._link_into_place(self.link_as, self._backend._path(key))
        except OSError as exc:
            raise storage_error("store", key, exc) from exc

    def discard(self) -> None:
        """Close the file; a named one is unlinked (its key, if published, stays)."""
        with contextlib.suppress(OSError):  # nothing was lost: the bytes are kept or unwanted
            os.close(self.fd)
        if self.name is not None:
            unlink_quietly(self.name)


class StagedLocalFile:
    """Bytes written to a temporary file, published under a key on commit."""

    def __init__(self, backend: LocalBackend) -> None:
        try:
            # readable too: copy_from hashes what it copied from the file itself
            self._temp = TempFile(backend, os.O_RDWR)
        except OSError as exc:
            raise storage_error("stage", "(new)", exc) from exc
        # the temporary file owns the descriptor, so a failed close here loses no bytes
        self._file: BinaryIO | None = open(self._temp.fd, "r+b", closefd=False)  # noqa: SIM115
        self._written = self._flushed = 0

    def write(self, data: bytes | bytearray | memoryview, /) -> None:
        assert self._file is not None, "write after commit or abort"
        try:
            self._file.write(data)
            self._written += len(data)
            if self._written - self._flushed >= _WRITEBACK_EVERY:
                self._file.flush()
                start_writeback(self._temp.fd, self._flushed, 0)
                self._flushed = self._written
        except OSError as exc:
            self.abort()
            raise storage_error("write", "(staged)", exc) from exc

    def copy_from(
        self,
        src: int,
        size: int,
        algorithm: str,
        also: Hasher | None = None,
        overlap: bool = True,
    ) -> tuple[str, int]:
        """Copy ``size`` bytes of the open file ``src`` in, instead of writing them:
        :func:`~datakeep.copying.copy_hashed`'s (digest of the copy, bytes copied), with
        its ``overlap``."""
        assert self._file is not None and not self._written, "copy_from into a used file"
        fd = self._temp.fd

        def landed(offset: int, length: int) -> None:
            start_writeback(fd, offset, length)  # the disk works while the rest is copied

        try:
            digest, copied = copy_hashed(src, fd, size, algorithm, landed, also, overlap)
        except OSError as exc:
            self.abort()
            raise storage_error("copy", "(staged)", exc) from exc
        self._written = copied
        return digest, copied

    def commit(self, key: str) -> bool:
        assert self._file is not None, "commit after commit or abort"
        try:
            try:
                self._file.flush()
            except OSError as exc:
                raise storage_error("write", key, exc) from exc
            return self._temp.publish(key)
        finally:
            self.abort()

    def abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):  # the bytes are being thrown away anyway
                self._file.close()
            self._file = None
            self._temp.discard()

    def __enter__(self) -> StagedLocalFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


def unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_libc: Any = None


def _load_libc() -> Any:
    """The C library with ``syncfs`` and ``sync_file_range`` (Linux), else False."""
    global _libc
    if _libc is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syncfs.argtypes = [ctypes.c_int]
            libc.sync_file_range.argtypes = [
                ctypes.c_int,
                ctypes.c_int64,
                ctypes.c_int64,
                ctypes.c_uint,
            ]
            _libc = libc
        except (OSError, AttributeError):
            _libc = False
    return _libc


_SYNC_FILE_RANGE_WRITE = 2  # from linux/fs.h: start writeback, do not wait


def start_writeback(fd: int, start: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes from ``start`` to disk now, so the
    final sync finds them on their way instead of starting them all at once."""
    libc = _load_libc()
    if libc:
        libc.sync_file_range(fd, start, length, _SYNC_FILE_RANGE_WRITE)  # a hint: errors ignored


def syncfs(path: str) -> None:
    """Flush the one filesystem holding ``path`` (``os.sync`` flushes them all)."""
    libc = _load_libc()
    if not libc:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)
