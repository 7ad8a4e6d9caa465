"""``KeepFileSystem``: a keep as a read-only fsspec filesystem under ``datakeep://``.

fsspec finds it through the ``fsspec.specs`` entry point, so pandas, pyarrow, DuckDB or
any fsspec reader opens ``datakeep://blake3:<hex>/sub/file.csv`` with no import. Paths are
described in :mod:`.paths`; every byte handed out is verified (:mod:`.blobs`).

    import pandas as pd
    df = pd.read_csv("datakeep://tag/stage=raw/train.csv", storage_options={"keep": "."})
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem, _Cached

import datakeep

from ..errors import DatakeepError
from ..keep import Keep, find_keep_dir
from .blobs import CHUNK, VerifiedBlobs
from .nodes import DirNode, FileNode, Node
from .paths import KeepPath, parse_path
from .resolve import Resolver

__all__ = ["KeepFile", "KeepFileSystem", "ReadOnlyError"]


class ReadOnlyError(DatakeepError, PermissionError):
    """``datakeep://`` is read-only: content goes in with ``put`` and comes out by URL."""


_READ_ONLY = (
    "datakeep:// is read-only: store data with keep.put / put_tree (or 'datakeep put'), "
    "then read it by digest or tag"
)


class _OneKeepEach(_Cached):  # type: ignore[misc]
    """fsspec's instance cache, keyed by where the keep is rather than by the argument
    given: the default (the keep found from the current directory) and relative paths
    are resolved first, so two directories never share an instance. An open
    :class:`Keep` given is used as it is, never cached."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if "keep" in kwargs:
            keep = kwargs.pop("keep")
        else:
            keep, args = (args[0], args[1:]) if args else (None, args)
        if isinstance(keep, Keep):
            kwargs["skip_instance_cache"] = True
        else:
            keep = os.fspath(find_keep_dir(keep if keep is not None else ".").parent)
        return super().__call__(*args, keep=keep, **kwargs)


class KeepFileSystem(AbstractFileSystem, metaclass=_OneKeepEach):  # type: ignore[misc]
    """A keep's contents, trees, tags, workspace snapshots and file store as files.

    ``keep``: the directory holding the keep (searched upward, as the command line does;
    default the current directory) or an open :class:`Keep`. ``files_store``: which file
    store ``files/`` shows when the keep holds several.
    """

    protocol = "datakeep"
    root_marker = ""
    blocksize = 4 * CHUNK
    """fsspec's read-ahead: a small random read costs at most five verified chunks."""

    def __init__(
        self,
        keep: str | os.PathLike[str] | Keep | None = None,
        files_store: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.keep = keep if isinstance(keep, Keep) else datakeep.open(keep or ".")
        self._resolver = Resolver(self.keep, files_store)
        self.blobs = VerifiedBlobs(self.keep)

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        return super()._strip_protocol(path).lstrip("/")

    def _resolve(self, path: str) -> tuple[KeepPath, Node]:
        where = parse_path(self._strip_protocol(path))
        return where, self._resolver.node(where)

    def _file(self, path: str) -> tuple[KeepPath, FileNode]:
        where, node = self._resolve(path)
        if isinstance(node, DirNode):
            raise IsADirectoryError(f"datakeep://{where.name} is a directory")
        return where, node

    # -- reading ---------------------------------------------------------------------------
    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        where, node = self._resolve(path)
        if isinstance(node, FileNode):
            found = [node.info(where.name)]
        else:
            found = [child.info(where.child(name)) for name, child in node.children()]
        return found if detail else [f["name"] for f in found]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        where, node = self._resolve(path)
        return node.info(where.name)

    def exists(self, path: str, **kwargs: Any) -> bool:
        """False for a path naming nothing; a refused path (``..``) still raises."""
        try:
            self._resolve(path)
        except FileNotFoundError:
            return False
        return True

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        _, node = self._file(path)
        if start is not None and start < 0:
            start = max(0, node.size + start)
        if end is not None and end < 0:
            end = max(0, node.size + end)
        return self.blobs.read(node.digest, node.size, start or 0, end)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> KeepFile:
        if mode != "rb":
            raise ReadOnlyError(f"cannot open {path!r} with mode {mode!r}: {_READ_ONLY}")
        where, node = self._file(path)
        return KeepFile(self, where.name, node, block_size, cache_options, **kwargs)

    def ukey(self, path: str) -> str:
        """The digest: content-addressed, so it changes exactly when the bytes do."""
        info = self.info(path)
        return str(info.get("digest") or info["name"])

    def created(self, path: str) -> datetime:
        """When the content (or the tree, snapshot or store entry holding it) was recorded."""
        created = self.info(path).get("created")
        if created is None:
            raise FileNotFoundError(f"datakeep://{path} has no recorded time")
        return datetime.fromtimestamp(created, UTC)

    def modified(self, path: str) -> datetime:
        """Stored content never changes: the time it was recorded."""
        return self.created(path)

    # -- writing: refused ------------------------------------------------------------------
    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise ReadOnlyError(_READ_ONLY)

    mkdir = makedirs = rmdir = rm_file = _rm = rm = _refuse
    touch = pipe_file = put_file = cp_file = mv = _refuse


class KeepFile(AbstractBufferedFile):  # type: ignore[misc]
    """A seekable, read-only file whose every read is verified (:mod:`.blobs`)."""

    DEFAULT_BLOCK_SIZE = KeepFileSystem.blocksize

    def __init__(
        self,
        fs: KeepFileSystem,
        path: str,
        node: FileNode,
        block_size: int | None = None,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.node = node
        self.digest = node.digest
        super().__init__(
            fs,
            path,
            mode="rb",
            block_size=block_size or "default",
            cache_type=kwargs.pop("cache_type", "readahead"),
            cache_options=cache_options,
            size=node.size,
            **kwargs,
        )

    def read(self, length: int | None = -1) -> bytes:
        """As fsspec's, but a read longer than the read-ahead block goes straight to the
        verified range: no copy of it kept, none made."""
        if length is not None and length > self.blocksize and self.mode == "rb" and not self.closed:
            data = self._fetch_range(self.loc, min(self.size, self.loc + length))
            self.loc += len(data)
            return data
        return bytes(super().read(length))

    def _fetch_range(self, start: int, end: int) -> bytes:
        blobs: VerifiedBlobs = self.fs.blobs
        return blobs.read(self.node.digest, self.node.size, start, end)
