"""The content store: content-addressed, deduplicated, write-once, verified on every read.

A put streams the bytes once through the hasher and into the backend's staging area
(:mod:`.write`), names them by digest, publishes the blob create-only, then records it in
the index (:mod:`.rows`). The order matters: a crash can leave an orphan blob (which gc
removes) but never an index row without its blob. Every read path (:mod:`.read`)
re-hashes what it returns and raises :class:`~datakeep.errors.IntegrityError` instead of
handing out wrong bytes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import BinaryIO

from sqlalchemy import Connection, bindparam, insert, literal_column, select, update

from ..backends import Backend, FileBackend
from ..digest import new_hasher
from ..errors import IntegrityError, InvalidInput, NotFound
from ..index import IndexDatabase, Leases, contents, inline_blobs, placements
from ..index.direct import DirectConnection, direct_connection
from ..index.upsert import insert_ignore
from .expect import Expected, expectation
from .model import (
    CHUNK,
    INLINE_BACKEND,
    INLINE_KEY,
    INLINE_MAX,
    PRIMARY,
    QUARANTINE,
    Content,
    LinkMode,
    Router,
    Stored,
    Written,
    check_tags,
)
from .packs import PACK_LIMIT
from .pointers import fanout_key, key_of_pointer, pointer_of, stored_as_file
from .read import BlobReading
from .rows import Execute, IndexRows, executor
from .write import BlobWriting

__all__ = ["ContentStore"]

_log = logging.getLogger("datakeep")

# built once, so that the driver path (index/direct.py) compiles each once per dialect;
# every value is a named parameter
_POINTER_AT = select(placements.c.pointer).where(
    placements.c.digest == bindparam("digest"), placements.c.location == bindparam("location")
)
_INSERT_INLINE = insert(inline_blobs)
# the kind is part of the SQL text: the driver path binds only the parameters of its rows
_MAKE_TREE = (
    update(contents)
    .where(contents.c.digest == bindparam("tree"))
    .values(kind=literal_column("'tree'"))
)
_INSERT_PLACEMENT = insert(placements)


class ContentStore(BlobReading, BlobWriting):
    """Content-addressed bytes over one backend (the keep's durable home) and an index."""

    def __init__(
        self,
        db: IndexDatabase,
        backend: Backend,
        algorithm: str,
        router: Router = fanout_key,
    ) -> None:
        self.db = db
        self.backend = backend
        self.algorithm = algorithm
        self.router = router
        self.leases = Leases(db)
        # checked once: a runtime Protocol isinstance costs 15 us, too much per file
        self.files: FileBackend | None = backend if isinstance(backend, FileBackend) else None
        self._reflink_ok = True  # flips off after the first refusal: no syscall per file
        self.on_repair: Callable[[str], None] | None = None
        """Told (one line) whenever a damaged stored copy is set aside and replaced."""
        self.shown_from: str | None = None
        """The directory that messages show local blob paths relative to (the keep's
        root directory, set by :class:`~datakeep.keep.Keep`); None: backend keys."""

    # -- healing -------------------------------------------------------------------------
    def set_aside(self, item: Stored) -> str | None:
        """Move a damaged blob out of the way: its bytes are copied under
        :data:`QUARANTINE`, and a blob of its own is deleted so that a good copy can take
        its key (a packed or inline copy stays; the good copy goes elsewhere). Returns
        where it went, as messages show it (:meth:`shown`), or None if the blob is gone."""
        whole = stored_as_file(item.key)
        aside = QUARANTINE + (item.key if whole else fanout_key(item.digest, {}))
        try:
            with self.open_blob(item.key, item.digest) as raw, self.backend.stage() as staged:
                while chunk := raw.read(CHUNK):
                    staged.write(chunk)
                staged.commit(aside)  # create-only: a copy set aside before is kept
        except NotFound:
            return None
        if whole:
            self.backend.delete(item.key)
        return self.shown(aside)

    def shown(self, key: str) -> str:
        """Where the blob ``key`` is, as messages show it: for local bytes, its path from
        the keep's root directory (``.datakeep/objects/quarantine/...``), which a person
        can open from there; otherwise the key."""
        if self.shown_from is None or not isinstance(self.backend, FileBackend):
            return key
        return os.path.relpath(self.backend.path_of(key), self.shown_from)

    def set_aside_if_bad(self, digest: str, size: int, key: str) -> bool:
        """Before a good copy of ``digest`` is published at ``key``: True if the key is
        free (or freed: the blob there failed its check and was set aside), False if a
        good or unreadable copy holds it."""
        return self.check_or_set_aside(Stored(digest, size, "blob", key)) in {
            "gone",
            "set aside",
        }

    def check_or_set_aside(self, item: Stored) -> str:
        """Check a stored copy: ``good``, ``gone``, ``unreadable`` (left alone), or
        ``set aside`` when it failed its digest (said through :meth:`report_repair`)."""
        try:
            self.check(item)
        except NotFound:
            return "gone"
        except IntegrityError as exc:
            aside = self.set_aside(item)
            self.report_repair(f"{exc}; set aside as {aside}")
            return "set aside"
        except OSError:
            return "unreadable"
        return "good"

    def report_repair(self, message: str) -> None:
        """Log a repair (``datakeep`` logger, warning) and tell :attr:`on_repair`."""
        _log.warning(message)
        if self.on_repair is not None:
            self.on_repair(message)

    def write_packs(self, blobs: Mapping[str, bytes]) -> list[Written]:
        """Store the ``blobs`` (digest -> bytes) that the index does not hold yet, in
        packs of up to :data:`~datakeep.content.packs.PACK_LIMIT` bytes, in the order given;
        they are not yet recorded. The caller holds a shared lease, so what the index
        holds now stays until the caller records what it wrote."""
        if not blobs:
            return []
        lacking = self.missing(blobs)
        written: list[Written] = []
        group: list[str] = []
        size = 0
        for digest in [d for d in blobs if d in lacking]:
            group.append(digest)
            size += len(blobs[digest])
            if size >= PACK_LIMIT:
                written += self.write_pack({d: blobs[d] for d in group})
                group, size = [], 0
        if group:
            written += self.write_pack({d: blobs[d] for d in group})
        return written

    # -- recording -------------------------------------------------------------------
    def record(
        self,
        written: Sequence[Written],
        tags: Mapping[str, str] | None = None,
        kind: str = "blob",
        conn: Connection | None = None,
        replace: bool = False,
    ) -> dict[str, float]:
        """Make stored blobs durable, then add their index rows (idempotent). Returns the
        digests that were new to the index, with their ``created_at``. With ``replace``
        the primary placements point at these blobs even where the index named another
        copy: the good copies that replace damaged ones.

        The caller holds a shared lease (:attr:`leases`) from writing the blobs until
        this returns, so gc cannot sweep them in between.
        """
        if not written:
            return {}
        rows = self._durable_rows(written, tags, kind, replace)
        if conn is not None:
            return rows.insert(conn.dialect.name, executor(conn))
        return self.db.transact(
            "recording content", lambda c: rows.insert(c.dialect.name, executor(c))
        )

    def _durable_rows(
        self,
        written: Sequence[Written],
        tags: Mapping[str, str] | None,
        kind: str,
        replace: bool = False,
    ) -> IndexRows:
        """Sync the blobs to disk; the index rows that record them."""
        self.sync_blobs()
        tag_map = check_tags(tags)
        now = time.time()
        # rows in digest order (tags in key order): concurrent writers then lock them in
        # the same order and cannot deadlock each other on PostgreSQL
        unique = {w.digest: w for w in sorted(written, key=lambda w: w.digest)}
        return IndexRows(
            kind=kind,
            created_at=now,
            contents=[
                {"digest": w.digest, "size": w.size, "kind": kind, "created_at": now}
                for w in unique.values()
            ],
            placements=[
                {
                    "digest": w.digest,
                    "location": PRIMARY,
                    "backend": self.backend.name,
                    "pointer": pointer_of(w.key),
                }
                for w in unique.values()
            ],
            tags=[
                {"digest": d, "key": k, "value": tag_map[k]}
                for d in unique
                for k in sorted(tag_map)
            ],
            replace=replace,
        )

    def record_inline(
        self, execute: Execute, datas: Sequence[bytes], kind: str = "blob"
    ) -> list[str]:
        """Store small contents in the index, inside the caller's write transaction (its
        ``execute``: :func:`~datakeep.content.rows.executor` of a connection, or a
        :class:`DirectConnection`'s; the caller holds a shared lease); returns their
        digests in order. Nothing touches the disk but the index, so this is the fast path
        for many small payloads."""
        if not datas:
            return []
        digests = []
        new_rows: dict[str, bytes] = {}
        for data in datas:
            if len(data) > INLINE_MAX:
                raise InvalidInput(f"inline content is limited to {INLINE_MAX} bytes")
            hasher = new_hasher(self.algorithm)
            hasher.update(data)
            digest = self._digest_of(hasher)
            digests.append(digest)
            new_rows[digest] = bytes(data)
        now = time.time()
        dialect = self.db.dialect
        created = execute(
            insert_ignore(dialect, contents, ["digest"], returning=["digest"]),
            [
                {"digest": d, "size": len(new_rows[d]), "kind": kind, "created_at": now}
                for d in sorted(new_rows)
            ],
        )
        if kind == "tree":
            execute(_MAKE_TREE, [{"tree": d} for d in sorted(new_rows)])
        if created:
            fresh = sorted(row[0] for row in created)
            execute(_INSERT_INLINE, [{"digest": d, "data": new_rows[d]} for d in fresh])
            pointer = pointer_of(INLINE_KEY)
            execute(
                _INSERT_PLACEMENT,
                [
                    {
                        "digest": d,
                        "location": PRIMARY,
                        "backend": INLINE_BACKEND,
                        "pointer": pointer,
                    }
                    for d in fresh
                ],
            )
        return digests

    def put_inline(self, datas: Sequence[bytes]) -> list[str]:
        """Store small contents (each at most :data:`INLINE_MAX` bytes) in the index in
        one transaction; identical content already stored is not stored again."""
        with self.leases.shared():
            return self.db.transact(
                "storing small contents", lambda c: self.record_inline(executor(c), datas)
            )

    # -- the user-facing puts ----------------------------------------------------------
    # ``expect``: a digest the caller knows (any algorithm), checked in the same pass;
    # on a mismatch IntegrityError and nothing stored (see :mod:`.expect`)
    def put(
        self, data: bytes, tags: Mapping[str, str] | None = None, expect: str | None = None
    ) -> Content:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInput(f"put() takes bytes, not {type(data).__name__}")
        wanted = expectation(expect, self.algorithm)
        return self._put(lambda: self.write_bytes(bytes(data), tags, wanted), tags, wanted)

    def put_stream(
        self,
        source: Iterable[bytes] | BinaryIO,
        tags: Mapping[str, str] | None = None,
        expect: str | None = None,
    ) -> Content:
        wanted = expectation(expect, self.algorithm)
        return self._put(lambda: self.write_stream(source, tags, wanted), tags, wanted)

    def put_file(
        self,
        path: str | os.PathLike[str],
        tags: Mapping[str, str] | None = None,
        link: LinkMode = "copy",
        expect: str | None = None,
    ) -> Content:
        wanted = expectation(expect, self.algorithm)
        return self._put(lambda: self.write_file(path, tags, link, None, wanted), tags, wanted)

    def _put(
        self,
        write: Callable[[], Written],
        tags: Mapping[str, str] | None,
        expect: Expected | None = None,
    ) -> Content:
        checked = check_tags(tags)
        # recorded straight through the driver (index/direct.py); on PostgreSQL the lease
        # is a lock of the same transaction
        with direct_connection(self.db) as direct, self.leases.shared(on=direct):
            written = write()
            rows = self._durable_rows([written], checked, "blob")
            if expect is not None and expect.alias is not None:
                rows.aliases.append({"alias": expect.alias, "digest": written.digest})
            created = direct.transact(
                "recording content", lambda d: self._record_put(d, written, rows)
            )
        if written.digest in created:  # new: the index holds exactly this, no need to ask
            return Content(written.digest, written.size, "blob", created[written.digest], checked)
        return self.info(written.digest)

    def _record_put(
        self, direct: DirectConnection, written: Written, rows: IndexRows
    ) -> dict[str, float]:
        """Insert one put's rows in ``direct``'s open transaction; the digests new to it."""
        created = rows.insert(self.db.dialect, direct.execute)
        if written.digest not in created:
            where = {"digest": written.digest, "location": PRIMARY}
            ((pointer,),) = direct.execute(_POINTER_AT, [where])
            kept = key_of_pointer(pointer)
            if kept != written.key:
                small = Stored(written.digest, written.size, "blob", kept)
                # a damaged copy in a pack or the index is replaced by this put's good
                # one; a whole file kept elsewhere (routed) is not read back here
                if not stored_as_file(kept) and self.check_or_set_aside(small) == "set aside":
                    replaced = dataclasses.replace(rows, tags=[], aliases=[], replace=True)
                    replaced.insert(self.db.dialect, direct.execute)
                    return created
                # kept elsewhere already (in a pack, inline, or routed by other tags): no
                # row names the blob this put wrote, so it goes now instead of waiting for
                # gc; before the commit, which may end the lease
                self.backend.delete(written.key)
        return created
