"""``datakeep.local@v1``: blobs as read-only files under a root directory.

Layout: ``<root>/<key>`` where the content store's router gives keys a two-character
fan-out (``blake3/ab/cdef...``). Every write goes to a temporary file first and is published
with ``link()``, which fails if the key exists: create-only and atomic, so a reader or a
crash never sees a half-written blob. The temporary file is anonymous (``O_TMPFILE``) where
the filesystem allows it, else a named file in ``<root>/.tmp/``. Durability is batched:
:meth:`LocalBackend.sync` flushes everything written since the last call, once.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import itertools
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from ..copying import copy_file, copy_hashed
from ..errors import LinkUnsupported, NotFound, StorageError
from ._protocol import BlobInfo, IngestLink, StagedFile, check_key

__all__ = ["LocalBackend"]

_FICLONE = 0x40049409  # from linux/fs.h
_READ_ONLY = 0o444
# Below this many unsynced blobs, fsync each; above, one syncfs of the whole filesystem.
_FSYNC_EACH_LIMIT = 64
# A large staged blob starts its writeback every this many bytes: the disk then works while
# the rest is hashed and copied (1 GB of D1: 0.65-0.89 s to disk instead of 0.88-1.01 s).
_WRITEBACK_EVERY = 16 << 20
_LINK_UNSUPPORTED = {
    errno.EXDEV,
    errno.EPERM,
    errno.EOPNOTSUPP,
    errno.EINVAL,
    errno.ENOTTY,
    errno.EMLINK,
}


# Temporary names: a random tag per process, then a counter; no random bytes per blob.
# A forked child draws its own tag. next() on a count is atomic under the GIL.
_process_tag = secrets.token_hex(8)
_tmp_numbers = itertools.count()


def _new_process_tag() -> None:
    global _process_tag
    _process_tag = secrets.token_hex(8)


os.register_at_fork(after_in_child=_new_process_tag)

# An O_TMPFILE file gets its name by linkat() of its /proc/self/fd entry (open(2)).
_ANONYMOUS_TEMP_FLAG = getattr(os, "O_TMPFILE", 0) if os.path.isdir("/proc/self/fd") else 0
# What open(O_TMPFILE) fails with where the filesystem or kernel lacks it
_NO_ANONYMOUS_TEMP = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL}


def _storage_error(action: str, key: str, exc: OSError) -> StorageError:
    return StorageError(f"cannot {action} blob {key!r}: {exc.strerror or exc}")


class _TempFile:
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
                    backend._tmp_dir, access | _ANONYMOUS_TEMP_FLAG | os.O_CLOEXEC, _READ_ONLY
                )
                return
            except OSError as exc:
                if exc.errno not in _NO_ANONYMOUS_TEMP:
                    raise
                backend._anonymous_temp = False
        self.name = backend._temp_path()
        self.fd = os.open(self.name, access | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _READ_ONLY)

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
            raise _storage_error("store", key, exc) from exc

    def discard(self) -> None:
        """Close the file; a named one is unlinked (its key, if published, stays)."""
        with contextlib.suppress(OSError):  # nothing was lost: the bytes are kept or unwanted
            os.close(self.fd)
        if self.name is not None:
            _unlink_quietly(self.name)


class _StagedFile:
    """Bytes written to a temporary file, published under a key on commit."""

    def __init__(self, backend: LocalBackend) -> None:
        try:
            # readable too: copy_from hashes what it copied from the file itself
            self._temp = _TempFile(backend, os.O_RDWR)
        except OSError as exc:
            raise _storage_error("stage", "(new)", exc) from exc
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
                _start_writeback(self._temp.fd, self._flushed, 0)
                self._flushed = self._written
        except OSError as exc:
            self.abort()
            raise _storage_error("write", "(staged)", exc) from exc

    def copy_from(self, src: int, size: int, algorithm: str) -> tuple[str, int]:
        """Copy ``size`` bytes of the open file ``src`` in, instead of writing them:
        :func:`~datakeep.copying.copy_hashed`'s (digest of the copy, bytes copied)."""
        assert self._file is not None and not self._written, "copy_from into a used file"
        fd = self._temp.fd

        def landed(offset: int, length: int) -> None:
            _start_writeback(fd, offset, length)  # the disk works while the rest is copied

        try:
            digest, copied = copy_hashed(src, fd, size, algorithm, landed)
        except OSError as exc:
            self.abort()
            raise _storage_error("copy", "(staged)", exc) from exc
        self._written = copied
        return digest, copied

    def commit(self, key: str) -> bool:
        assert self._file is not None, "commit after commit or abort"
        try:
            try:
                self._file.flush()
            except OSError as exc:
                raise _storage_error("write", key, exc) from exc
            return self._temp.publish(key)
        finally:
            self.abort()

    def abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):  # the bytes are being thrown away anyway
                self._file.close()
            self._file = None
            self._temp.discard()

    def __enter__(self) -> _StagedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class LocalBackend:
    """Blobs as files under ``root``; see the module docstring for the layout."""

    name: ClassVar[str] = "datakeep.local@v1"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._root = os.fspath(self.root)
        self._tmp_dir = os.path.join(self._root, ".tmp")
        try:
            os.makedirs(self._tmp_dir, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create blob directory {self._root}: {exc}") from exc
        self._lock = threading.Lock()
        self._unsynced: list[str] = []
        self._known_dirs: set[str] = set()
        self._anonymous_temp = bool(_ANONYMOUS_TEMP_FLAG)  # until the filesystem refuses

    def __repr__(self) -> str:
        return f"LocalBackend({self._root!r})"

    # -- helpers ---------------------------------------------------------------------
    def _path(self, key: str) -> str:
        return os.path.join(self._root, check_key(key))

    def _temp_path(self) -> str:
        return f"{self._tmp_dir}/{_process_tag}-{next(_tmp_numbers)}"

    def _link_into_place(self, link: Callable[[str], None], path: str) -> bool:
        """``link(path)``, making parents on demand; False if ``path`` exists."""
        parent = os.path.dirname(path)
        if parent not in self._known_dirs:
            os.makedirs(parent, exist_ok=True)
            self._known_dirs.add(parent)
        try:
            link(path)
        except FileExistsError:
            return False
        except FileNotFoundError:
            # the fan-out directory was removed behind our back (gc of an empty dir)
            os.makedirs(parent, exist_ok=True)
            try:
                link(path)
            except FileExistsError:
                return False
        with self._lock:
            self._unsynced.append(path)
        return True

    # -- the Backend contract --------------------------------------------------------
    def create(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        if os.path.exists(path):
            return False
        try:
            temp = _TempFile(self, os.O_WRONLY)
        except OSError as exc:
            raise _storage_error("write", key, exc) from exc
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(temp.fd, view) :]
            except OSError as exc:
                raise _storage_error("write", key, exc) from exc
            return temp.publish(key)
        finally:
            temp.discard()

    def stage(self) -> StagedFile:
        return _StagedFile(self)

    def open(self, key: str, offset: int = 0) -> BinaryIO:
        path = self._path(key)
        try:
            f = open(path, "rb")  # noqa: SIM115 - returned to the caller
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(f"no blob {key!r} in {self._root}") from None
        except OSError as exc:
            raise _storage_error("open", key, exc) from exc
        if offset:
            f.seek(offset)
        return f

    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        with self.open(key, start) as f:
            try:
                return f.read() if end is None else f.read(max(0, end - start))
            except OSError as exc:
                raise _storage_error("read", key, exc) from exc

    def head(self, key: str) -> BlobInfo:
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no blob {key!r} in {self._root}") from None
        except OSError as exc:
            raise _storage_error("stat", key, exc) from exc
        # ctime: publishing by link() and the chmod to read-only both set it
        return BlobInfo(key, st.st_size, st.st_ctime)

    def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return False
        except OSError as exc:
            raise _storage_error("delete", key, exc) from exc
        # prune directories left empty, so a key never finds a stale directory in its way
        # (a concurrent writer whose directory vanishes re-creates it: _link_into_place)
        parent = os.path.dirname(path)
        while parent != self._root:
            self._known_dirs.discard(parent)
            try:
                os.rmdir(parent)
            except OSError:
                break
            parent = os.path.dirname(parent)
        return True

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        for key in self.keys(prefix):
            try:
                yield self.head(key)
            except NotFound:
                continue  # deleted while we listed

    def keys(self, prefix: str = "") -> Iterator[str]:
        # start at the deepest directory the prefix names, so a fan-out prefix is cheap;
        # no stat per blob: the directory entry's type says file or directory
        base = prefix.rpartition("/")[0]
        start = os.path.join(self._root, check_key(base)) if base else self._root
        stack = [(start, base + "/" if base else "")]
        while stack:
            directory, rel = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                key = rel + entry.name
                if entry.is_dir(follow_symlinks=False):
                    if key.startswith(prefix) or prefix.startswith(key + "/"):
                        stack.append((entry.path, key + "/"))
                elif key.startswith(prefix):
                    yield key

    def config(self) -> dict[str, Any]:
        return {"root": self._root}

    # -- the FileBackend extras ------------------------------------------------------
    def stale_temp_files(self, before: float) -> Sequence[tuple[str, int]]:
        """(name, size) of the temporary files last written before ``before`` (seconds
        since the epoch): what a write that was killed left behind."""
        try:
            entries = list(os.scandir(self._tmp_dir))
        except FileNotFoundError:
            return []
        stale = []
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # published meanwhile
            if stat.S_ISREG(info.st_mode) and info.st_mtime < before:
                stale.append((entry.name, info.st_size))
        return sorted(stale)

    def remove_temp_file(self, name: str) -> None:
        if "/" in name or name.startswith("."):
            raise ValueError(f"not a temporary file's name: {name!r}")
        _unlink_quietly(os.path.join(self._tmp_dir, name))

    def path_of(self, key: str) -> Path:
        return Path(self._path(key))

    def ingest(self, key: str, source: Path, link: IngestLink) -> bool:
        path = self._path(key)
        if os.path.exists(path):
            return False
        try:
            if link == "hardlink":
                # The user's file and the blob become one inode: make it read-only so an
                # in-place edit of the working file cannot corrupt the store.
                mode = os.stat(source).st_mode
                os.chmod(source, mode & ~0o222)
                return self._link_into_place(functools.partial(os.link, source), path)
            with open(source, "rb") as src:
                temp = _TempFile(self, os.O_WRONLY)
                try:
                    if link == "reflink":
                        fcntl.ioctl(temp.fd, _FICLONE, src.fileno())
                    else:
                        copy_file(src.fileno(), temp.fd)
                    return self._link_into_place(temp.link_as, path)
                finally:
                    temp.discard()
        except OSError as exc:
            if exc.errno in _LINK_UNSUPPORTED:
                raise LinkUnsupported(
                    f"cannot {link} {os.fspath(source)!r} into {self._root}: {exc.strerror}"
                ) from exc
            raise _storage_error("link", key, exc) from exc

    def sync(self) -> None:
        with self._lock:
            pending, self._unsynced = self._unsynced, []
        if not pending:
            return
        try:
            if len(pending) <= _FSYNC_EACH_LIMIT:
                for path in pending:
                    _fsync_path(path)
                for directory in {os.path.dirname(p) for p in pending}:
                    _fsync_path(directory)
            else:
                _syncfs(self._root)
        except OSError as exc:
            raise StorageError(f"cannot flush blobs to disk in {self._root}: {exc}") from exc


def _fsync_path(path: str) -> None:
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


def _start_writeback(fd: int, start: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes from ``start`` to disk now, so the
    final sync finds them on their way instead of starting them all at once."""
    libc = _load_libc()
    if libc:
        libc.sync_file_range(fd, start, length, _SYNC_FILE_RANGE_WRITE)  # a hint: errors ignored


def _syncfs(path: str) -> None:
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
