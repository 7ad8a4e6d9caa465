"""``datakeep.local@v1``: blobs as read-only files under a root directory.

Layout: ``<root>/<key>`` where the content store's router gives keys a two-character
fan-out (``blake3/ab/cdef...``). Every write goes to a temporary file first and is published
with ``link()``, which fails if the key exists: create-only and atomic, so a reader or a
crash never sees a half-written blob. The temporary file is anonymous (``O_TMPFILE``) where
the filesystem allows it, else a named file in ``<root>/.tmp/``. Durability is batched:
:meth:`LocalBackend.sync` flushes everything written since the last call, once.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from ..copying import copy_file
from ..errors import LinkUnsupported, NotFound, StorageError
from ._local_files import (
    ANONYMOUS_TEMP_FLAG,
    StagedLocalFile,
    TempFile,
    fsync_path,
    new_temp_name,
    storage_error,
    syncfs,
    unlink_quietly,
)
from ._protocol import BlobInfo, IngestLink, StagedFile, check_key

__all__ = ["LocalBackend"]

_FICLONE = 0x40049409  # from linux/fs.h
# Below this many unsynced blobs, fsync each; above, one syncfs of the whole filesystem.
_FSYNC_EACH_LIMIT = 64
_LINK_UNSUPPORTED = {
    errno.EXDEV,
    errno.EPERM,
    errno.EOPNOTSUPP,
    errno.EINVAL,
    errno.ENOTTY,
    errno.EMLINK,
}


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
        self._anonymous_temp = bool(ANONYMOUS_TEMP_FLAG)  # until the filesystem refuses

    def __repr__(self) -> str:
        return f"LocalBackend({self._root!r})"

    # -- helpers ---------------------------------------------------------------------
    def _path(self, key: str) -> str:
        return os.path.join(self._root, check_key(key))

    def _temp_path(self) -> str:
        return f"{self._tmp_dir}/{new_temp_name()}"

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
            temp = TempFile(self, os.O_WRONLY)
        except OSError as exc:
            raise storage_error("write", key, exc) from exc
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(temp.fd, view) :]
            except OSError as exc:
                raise storage_error("write", key, exc) from exc
            return temp.publish(key)
        finally:
            temp.discard()

    def stage(self) -> StagedFile:
        return StagedLocalFile(self)

    def open(self, key: str, offset: int = 0) -> BinaryIO:
        path = self._path(key)
        try:
            f = open(path, "rb")  # noqa: SIM115 - returned to the caller
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(f"no blob {key!r} in {self._root}") from None
        except OSError as exc:
            raise storage_error("open", key, exc) from exc
        if offset:
            f.seek(offset)
        return f

    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        with self.open(key, start) as f:
            try:
                return f.read() if end is None else f.read(max(0, end - start))
            except OSError as exc:
                raise storage_error("read", key, exc) from exc

    def head(self, key: str) -> BlobInfo:
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no blob {key!r} in {self._root}") from None
        except OSError as exc:
            raise storage_error("stat", key, exc) from exc
        # ctime: publishing by link() and the chmod to read-only both set it
        return BlobInfo(key, st.st_size, st.st_ctime)

    def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return False
        except OSError as exc:
            raise storage_error("delete", key, exc) from exc
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
        unlink_quietly(os.path.join(self._tmp_dir, name))

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
                temp = TempFile(self, os.O_WRONLY)
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
            raise storage_error("link", key, exc) from exc

    def sync(self) -> None:
        with self._lock:
            pending, self._unsynced = self._unsynced, []
        if not pending:
            return
        try:
            if len(pending) <= _FSYNC_EACH_LIMIT:
                for path in pending:
                    fsync_path(path)
                for directory in {os.path.dirname(p) for p in pending}:
                    fsync_path(directory)
            else:
                syncfs(self._root)
        except OSError as exc:
            raise StorageError(f"cannot flush blobs to disk in {self._root}: {exc}") from exc
