"""The content store: content-addressed, deduplicated, write-once, verified on every read.

A put streams the bytes once through the hasher and into the backend's staging area
(:mod:`.write`), names them by digest, publishes the blob create-only, then records it in
the index (:mod:`.rows`). The order matters: a crash can leave an orphan blob (which gc
removes) but never an index row without its blob. Every read path (:mod:`.read`)
re-hashes what it returns and raises :class:`~datakeep.errors.IntegrityError` instead of
handing out wrong bytes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import BinaryIO

from sqlalchemy import Connection, bindparam, insert, select

from ..backends import Backend, FileBackend
from ..digest import new_hasher
from ..errors import InvalidInput
from ..index import IndexDatabase, Leases, contents, inline_blobs, placements
from ..index.direct import DirectConnection, direct_connection
from ..index.upsert import insert_ignore
from .model import (
    INLINE_BACKEND,
    INLINE_KEY,
    INLINE_MAX,
    PRIMARY,
    Content,
    LinkMode,
    Router,
    Written,
    check_tags,
)
from .packs import PACK_LIMIT
from .pointers import fanout_key, key_of_pointer, pointer_of
from .read import BlobReading
from .rows import IndexRows, executor
from .write import BlobWriting

__all__ = ["ContentStore"]

# compiled once and run straight through the driver, so every value is a named parameter
_POINTER_AT = select(placements.c.pointer).where(
    placements.c.digest == bindparam("digest"), placements.c.location == bindparam("location")
)


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
    ) -> dict[str, float]:
        """Make stored blobs durable, then add their index rows (idempotent). Returns the
        digests that were new to the index, with their ``created_at``.

        The caller holds a shared lease (:attr:`leases`) from writing the blobs until
        this returns, so gc cannot sweep them in between.
        """
        if not written:
            return {}
        rows = self._durable_rows(written, tags, kind)
        if conn is not None:
            return rows.insert(conn.dialect.name, executor(conn))
        return self.db.transact(
            "recording content", lambda c: rows.insert(c.dialect.name, executor(c))
        )

    def _durable_rows(
        self, written: Sequence[Written], tags: Mapping[str, str] | None, kind: str
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
        )

    def record_inline(self, conn: Connection, datas: Sequence[bytes]) -> list[str]:
        """Store small contents in the index, inside the caller's write transaction (the
        caller holds a shared lease); returns their digests in order. Nothing touches the
        disk but the index, so this is the fast path for many small payloads."""
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
        ordered = sorted(new_rows)
        created = set(
            conn.execute(
                insert_ignore(conn, contents, ["digest"], returning=["digest"]),
                [
                    {"digest": d, "size": len(new_rows[d]), "kind": "blob", "created_at": now}
                    for d in ordered
                ],
            ).scalars()
        )
        if created:
            fresh = sorted(created)
            conn.execute(insert(inline_blobs), [{"digest": d, "data": new_rows[d]} for d in fresh])
            pointer = pointer_of(INLINE_KEY)
            conn.execute(
                insert(placements),
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
                "storing small contents", lambda c: self.record_inline(c, datas)
            )

    # -- the user-facing puts ----------------------------------------------------------
    def put(self, data: bytes, tags: Mapping[str, str] | None = None) -> Content:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInput(f"put() takes bytes, not {type(data).__name__}")
        return self._put(lambda: self.write_bytes(bytes(data), tags), tags)

    def put_stream(
        self, source: Iterable[bytes] | BinaryIO, tags: Mapping[str, str] | None = None
    ) -> Content:
        return self._put(lambda: self.write_stream(source, tags), tags)

    def put_file(
        self,
        path: str | os.PathLike[str],
        tags: Mapping[str, str] | None = None,
        link: LinkMode = "copy",
    ) -> Content:
        return self._put(lambda: self.write_file(path, tags, link), tags)

    def _put(self, write: Callable[[], Written], tags: Mapping[str, str] | None) -> Content:
        checked = check_tags(tags)
        # recorded straight through the driver (index/direct.py); on PostgreSQL the lease
        # is a lock of the same transaction
        with direct_connection(self.db) as direct, self.leases.shared(on=direct):
            written = write()
            rows = self._durable_rows([written], checked, "blob")
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
            if key_of_pointer(pointer) != written.key:
                # kept elsewhere already (in a pack, inline, or routed by other tags): no
                # row names the blob this put wrote, so it goes now instead of waiting for
                # gc; before the commit, which may end the lease
                self.backend.delete(written.key)
        return created
