"""FileStore: named, write-once files under a namespace (event, production, ...), kept in
a keep and hash-checked on every fetch.

A store is a row of the index and its files are rows too (:mod:`.schema`); their bytes
are contents of the keep, stored once however many names they have. Adding a file is one
transaction that records its content and its name together (a file of up to 64 KiB is kept
in the index itself), so no crash leaves a name without its bytes, and a name taken twice
is refused by the database, not by a cached manifest.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid as uuids
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, func, select

from ..content import INLINE_MAX, Written
from ..content.rows import Execute, executor
from ..content.sources import check_unchanged, read_whole, source_file
from ..digest import hash_bytes
from ..errors import AlreadyExists, InvalidInput
from ..index.direct import direct_connection
from ..index.upsert import insert_ignore
from ..keep import KEEP_DIR, Keep
from .errors import AlreadyPresent, NotAStoreError
from .fetch import fetch_verified
from .hashing import THREADED_FROM, FileHashes, SideHashes
from .manifest import FileEntry, Manifest
from .names import check_name, check_namespace
from .schema import entries, stores

__all__ = ["FileStore"]

_READ = 8 << 20


class FileStore:
    """A named store of write-once files in a keep.

    ``FileStore.create(root, name)`` makes one (and the keep at ``root`` if there is none);
    ``FileStore.open(root)`` opens it again. ``root`` may also be an open :class:`Keep`, which
    can hold several stores by name.
    """

    def __init__(self, keep: Keep, name: str, owns_keep: bool = False) -> None:
        self.keep = keep
        self.name = name
        self._owns_keep = owns_keep
        self.manifest = Manifest(keep.db, name)
        """The store's manifest: hashes, uuids and listings, always current."""

    # -- creating and opening --------------------------------------------------------------
    @classmethod
    def create(cls, root: str | os.PathLike[str] | Keep, name: str) -> FileStore:
        """A new store named ``name``: in the keep ``root``, or in the keep at the directory
        ``root`` (created if absent), which must not hold a store yet."""
        check_name(name, "store name")
        keep, owns = _keep_at(root, create=True)
        with _closed_on_error(keep, owns):
            with keep.db.read("listing file stores") as conn:
                existing = conn.execute(select(stores.c.name)).scalars().all()
            if owns and existing:
                raise AlreadyExists(f"{keep.path.parent} holds a file store already: {existing[0]}")
            row = {"name": name, "created_at": time.time()}

            def insert(conn: Connection) -> list[str]:
                added = insert_ignore(conn, stores, ["name"], returning=["name"])
                return list(conn.execute(added, [row]).scalars())

            if not keep.db.transact("creating a file store", insert):
                raise AlreadyExists(f"a file store named {name!r} exists already")
        return cls(keep, name, owns_keep=owns)

    @classmethod
    def open(cls, root: str | os.PathLike[str] | Keep, name: str | None = None) -> FileStore:
        """The store ``name`` (or the only one) of the keep ``root`` or at the directory
        ``root``; :class:`NotAStoreError` if there is none."""
        keep, owns = _keep_at(root, create=False)
        with _closed_on_error(keep, owns):
            with keep.db.read("listing file stores") as conn:
                names = list(conn.execute(select(stores.c.name).order_by(stores.c.name)).scalars())
            if not names:
                raise NotAStoreError(f"{keep.path.parent} holds no file store")
            if name is None and len(names) > 1:
                raise InvalidInput(f"name the store: {', '.join(names)}")
            if name is not None and name not in names:
                raise NotAStoreError(f"no file store named {name!r} in {keep.path.parent}")
        return cls(keep, name or names[0], owns_keep=owns)

    def close(self) -> None:
        """Release the keep if this store opened it; idempotent."""
        if self._owns_keep:
            self._owns_keep = False
            self.keep.close()

    def __enter__(self) -> FileStore:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FileStore {self.name!r} in {self.keep.path}>"

    # -- adding ----------------------------------------------------------------------------
    def add_file(
        self, *namespace_and_path: str | os.PathLike[str], new_name: str | None = None
    ) -> dict[str, Any]:
        """Copy the file (the last argument) into the store under the namespace (the
        arguments before it, such as EVENT, PRODUCTION), as ``new_name`` or its own name.

        Returns ``{"file", "hash" (MD5 hex), "uuid", "digest", "sha256"}``. The name is
        write-once in its namespace (:class:`AlreadyPresent`); the same bytes under other
        names are stored once. The source is read once and never moved or linked.
        """
        *parts, path = namespace_and_path
        namespace = check_namespace(tuple(str(p) for p in parts))
        name = check_name(new_name if new_name is not None else Path(path).name)
        store = self.keep.store
        # read (and a large file written) inside, recorded outside: the reading of the
        # source turns OS errors into the caller's, which a refused name is not
        with contextlib.ExitStack() as lease:
            with source_file(path, None) as (fd, before):
                if before.st_size <= INLINE_MAX:
                    data = read_whole(fd, before.st_size)
                    hashes = _hashes_of(data, store.algorithm)
                else:
                    lease.enter_context(store.leases.shared())  # from blob to row
                    written, hashes = self._write_large(fd, before.st_size)
                check_unchanged(fd, before, path)
            row = self._row(namespace, name, hashes)
            if before.st_size <= INLINE_MAX:
                self._record_small(row, data)
            else:

                def record(conn: Connection) -> None:
                    store.record([written], conn=conn)
                    self._record(executor(conn), row)

                store.db.transact("adding a file", record)
        return {
            "file": name,
            "hash": hashes.md5,
            "uuid": row["uuid"],
            "digest": hashes.digest,
            "sha256": hashes.sha256,
        }

    def _write_large(self, fd: int, size: int) -> tuple[Written, FileHashes]:
        """Store the open file ``fd`` through the content store's write path, its MD5 and
        SHA-256 computed on the way."""
        with (
            open(fd, "rb", buffering=0, closefd=False) as f,
            SideHashes(size >= THREADED_FROM) as side,
        ):

            def chunks() -> Iterator[bytes]:
                while chunk := f.read(_READ):
                    side.feed(chunk)
                    yield chunk

            written = self.keep.store.write_stream(chunks())
            md5, sha256 = side.result()
        return written, FileHashes(md5, sha256, written.digest, written.size)

    def _row(self, namespace: str, name: str, hashes: FileHashes) -> dict[str, Any]:
        return {
            "uuid": uuids.uuid4().hex,
            "store": self.name,
            "namespace": namespace,
            "name": name,
            "digest": hashes.digest,
            "size": hashes.size,
            "md5": hashes.md5,
            "sha256": hashes.sha256,
            "created_at": time.time(),
        }

    def _record_small(self, row: dict[str, Any], data: bytes) -> None:
        """A small file's bytes (in the index) and its row in one transaction, straight
        through the driver: the fast path of many small files."""
        store = self.keep.store
        with direct_connection(store.db) as direct, store.leases.shared(on=direct):
            direct.transact("adding a file", lambda d: self._record(d.execute, row, inline=data))

    def _record(self, execute: Execute, row: dict[str, Any], inline: bytes | None = None) -> None:
        """The file's row (and, for a small file, its bytes) in the caller's transaction;
        :class:`AlreadyPresent`, which rolls the transaction back, if the name is taken."""
        if inline is not None:
            self.keep.store.record_inline(execute, [inline])
        added = insert_ignore(
            self.keep.db.dialect, entries, ["store", "namespace", "name"], returning=["uuid"]
        )
        if not execute(added, [row]):
            where = row["namespace"].replace("/", " ")
            raise AlreadyPresent(f"{row['name']!r} is already in {where} of store {self.name!r}")

    # -- fetching --------------------------------------------------------------------------
    def fetch_file(
        self,
        *namespace_and_name: str,
        hash: str | None = None,
        to: str | os.PathLike[str] | None = None,
    ) -> Path:
        """A path to a read-only copy of the file, every hash re-checked on the way (and
        ``hash``, an MD5 or a digest, if given): :class:`HashError` instead of a path if any
        does not match. The copy is written in ``to`` (default: the keep's ``fetched/``
        directory); a copy there from an earlier fetch is checked again and replaced if it
        was changed."""
        return self._fetch(self.manifest.entry(*namespace_and_name), hash, to)

    def fetch_uuid(
        self, uuid: str, hash: str | None = None, to: str | os.PathLike[str] | None = None
    ) -> Path:
        """As :meth:`fetch_file`, the file named by its uuid."""
        return self._fetch(self.manifest.entry_by_uuid(uuid), hash, to)

    def _fetch(self, entry: FileEntry, hash: str | None, to: str | os.PathLike[str] | None) -> Path:
        target = Path(to) if to is not None else self.keep.path / "fetched" / entry.uuid
        return fetch_verified(self.keep.store, entry, hash, target / entry.name)

    # -- what is there -----------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """The store's name, its number of files and their bytes (each content once)."""
        with self.keep.db.read("describing a file store") as conn:
            files, nbytes = conn.execute(
                select(func.count(), func.coalesce(func.sum(entries.c.size), 0)).where(
                    entries.c.store == self.name
                )
            ).one()
            distinct = (
                select(entries.c.digest, entries.c.size)
                .where(entries.c.store == self.name)
                .distinct()
                .subquery()
            )
            stored = conn.execute(select(func.coalesce(func.sum(distinct.c.size), 0))).scalar_one()
        return {
            "name": self.name,
            "files": files,
            "bytes": int(nbytes),
            "stored_bytes": int(stored),
        }


def _hashes_of(data: bytes, algorithm: str) -> FileHashes:
    with SideHashes(threaded=False) as side:
        side.feed(data)
        md5, sha256 = side.result()
    return FileHashes(md5, sha256, hash_bytes(data, algorithm), len(data))


@contextlib.contextmanager
def _closed_on_error(keep: Keep, owns: bool) -> Iterator[None]:
    """Close a keep the caller opened (``owns``) if what follows fails."""
    try:
        yield
    except BaseException:
        if owns:
            keep.close()
        raise


def _keep_at(root: str | os.PathLike[str] | Keep, create: bool) -> tuple[Keep, bool]:
    """The keep ``root`` or the one at the directory ``root`` (made if ``create``), and
    whether the caller opened it (and so closes it)."""
    if isinstance(root, Keep):
        return root, False
    import datakeep

    directory = Path(root)
    if (directory / KEEP_DIR).is_dir():
        return Keep(directory.resolve() / KEEP_DIR), True
    if not create:
        raise NotAStoreError(f"{directory} is not a file store (it holds no keep)")
    return datakeep.init(directory), True
