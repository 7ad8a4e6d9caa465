"""The content store: content-addressed, deduplicated, write-once, verified on every read.

A put streams the bytes once through the hasher and into the backend's staging area,
names them by digest, publishes the blob create-only, then records it in the index. The
order matters: a crash can leave an orphan blob (which gc removes) but never an index row
without its blob. Every read path (bytes, stream, reader, file export) re-hashes what it
returns and raises :class:`~datakeep.errors.IntegrityError` instead of handing out wrong
bytes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from sqlalchemy import Connection, and_, bindparam, exists, insert, select

from .backends import Backend, FileBackend
from .copying import copy_verified
from .digest import Hasher, hash_file, new_hasher, parse_digest
from .errors import (
    DatakeepError,
    IntegrityError,
    InvalidInput,
    InvalidPath,
    LinkUnsupported,
    NotFound,
    StorageError,
)
from .index import IndexDatabase, Leases, contents, inline_blobs, placements
from .index import tags as tag_table
from .index.direct import DirectConnection, direct_connection
from .index.upsert import insert_ignore, insert_or_update
from .packs import PACK_LIMIT, build_pack, member_key, object_key, pack_member

__all__ = [
    "CHUNK",
    "INLINE_KEY",
    "INLINE_MAX",
    "PACKED_MAX",
    "Content",
    "ContentStore",
    "LinkMode",
    "Page",
    "Problem",
    "Router",
    "Stored",
    "Written",
    "check_bytes",
    "drain_verified",
    "fanout_key",
    "key_of_pointer",
    "pointer_of",
    "stored_as_file",
    "tag_router",
    "verify_file",
    "write_new_file",
]

CHUNK = 1 << 20
# Small contents may live in the index itself (table inline_blobs) rather than as files:
# their placement names this key, which no backend key can equal ('@' is not allowed).
INLINE_KEY = "@inline"
INLINE_BACKEND = "datakeep.inline@v1"
INLINE_MAX = 64 << 10
# Files up to this size are read whole: one read, no staging file, no second copy.
SMALL_FILE = 4 << 20
PACKED_MAX = 64 << 10
"""Files of a tree up to this size are stored in packs (:meth:`ContentStore.write_packs`):
a file of its own costs a create, a link, an unlink and its share of a sync, several
times what writing 64 KiB costs, and dominates the put of many small files."""
PRIMARY = "primary"
# compiled once and run straight through the driver, so every value is a named parameter
_POINTER_AT = select(placements.c.pointer).where(
    placements.c.digest == bindparam("digest"), placements.c.location == bindparam("location")
)

LinkMode = Literal["copy", "hardlink", "auto"]
Router = Callable[[str, Mapping[str, str]], str]
"""Chooses a blob's key from its digest and tags."""


def pointer_of(key: str) -> str:
    """The JSON pointer the index stores for a blob key (or a pack member's key)."""
    member = pack_member(key)
    if member is not None:
        # what json.dumps writes, without its cost per row (pack keys need no escaping)
        return f'{{"pack": "{member.pack}", "offset": {member.offset}, "length": {member.length}}}'
    return json.dumps({"key": key})


_POINTER_HEAD, _POINTER_TAIL = '{"key": "', '"}'
_PACK_HEAD, _PACK_OFFSET, _PACK_LENGTH = '{"pack": "', '", "offset": ', ', "length": '


def key_of_pointer(pointer: str) -> str:
    """The blob key in a stored pointer (fast for the form :func:`pointer_of` writes)."""
    if (
        pointer.startswith(_POINTER_HEAD)
        and pointer.endswith(_POINTER_TAIL)
        and "\\" not in pointer
        and pointer.count('"') == 4
    ):
        return pointer[len(_POINTER_HEAD) : -len(_POINTER_TAIL)]
    if pointer.startswith(_PACK_HEAD):  # the form pointer_of writes for a pack member
        pack, _, rest = pointer[len(_PACK_HEAD) :].partition(_PACK_OFFSET)
        offset, _, length = rest.partition(_PACK_LENGTH)
        number, end = length[:-1], length[-1:]
        if offset.isdigit() and number.isdigit() and end == "}" and not {'"', "\\"} & set(pack):
            return member_key(pack, int(offset), int(number))
    fields = json.loads(pointer)
    if "pack" in fields:
        return member_key(str(fields["pack"]), int(fields["offset"]), int(fields["length"]))
    return str(fields["key"])


def stored_as_file(key: str) -> bool:
    """Whether the blob behind ``key`` is a backend object of its own (which can be
    hard-linked or re-hashed in place), not a range of a pack nor a row of the index."""
    return key != INLINE_KEY and object_key(key) == key


def fanout_key(digest: str, tags: Mapping[str, str]) -> str:
    """The default router: ``<algorithm>/<first two hex>/<rest>``."""
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}/{hexpart[:2]}/{hexpart[2:]}"


def tag_router(tag: str, routes: Collection[str]) -> Router:
    """A router that files content under ``<route>/`` when its tag ``tag`` names one of
    ``routes`` (a backend's routes, such as other buckets), else where :func:`fanout_key`
    says."""

    def route(digest: str, tags: Mapping[str, str]) -> str:
        value = tags.get(tag)
        key = fanout_key(digest, tags)
        return f"{value}/{key}" if value in routes else key

    return route


@dataclass(frozen=True, slots=True)
class Content:
    """A stored piece of content as the index knows it."""

    digest: str
    """``algorithm:hex`` of the bytes."""
    size: int
    """Length in bytes."""
    kind: str
    """``blob``, or ``tree`` for a directory manifest."""
    created_at: float
    """When it was first recorded (seconds since the epoch)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Labels attached with ``tags=`` or :meth:`ContentStore.tag`."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; pass ``next`` as ``after`` to get the following page."""

    items: list[Content]
    next: str | None


@dataclass(frozen=True, slots=True)
class Problem:
    """One content found wrong by verify or fsck."""

    digest: str
    """The content affected."""
    error: str
    """What is wrong with it."""


@dataclass(frozen=True, slots=True)
class Stored:
    """A content as recorded in the index, with where its blob is."""

    digest: str
    size: int
    kind: str
    key: str
    """The blob's key in the keep's durable home."""


@dataclass(frozen=True, slots=True)
class Written:
    """A blob that is stored in the backend and waits to be recorded in the index."""

    digest: str
    size: int
    key: str


def _check_tags(tag_map: Mapping[str, str] | None) -> dict[str, str]:
    if not tag_map:
        return {}
    checked = {}
    for key, value in tag_map.items():
        if not isinstance(key, str) or not key or len(key) > 255 or "=" in key:
            raise InvalidInput(f"invalid tag name {key!r}: a non-empty string without '='")
        if not isinstance(value, str):
            raise InvalidInput(f"tag {key!r} must have a string value, not {value!r}")
        checked[key] = value
    return checked


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


Execute = Callable[[Any, Sequence[Mapping[str, Any]]], Sequence[Sequence[Any]]]
"""Executes a Core statement for some rows in an open write transaction; returns the rows
the statement returns (SQLAlchemy's connection and :class:`DirectConnection` both can)."""


@dataclass(frozen=True, slots=True)
class _IndexRows:
    """The index rows that record some stored blobs, ready to insert."""

    kind: str
    created_at: float
    contents: list[dict[str, Any]]
    placements: list[dict[str, Any]]
    tags: list[dict[str, Any]]

    def insert(self, dialect: str, execute: Execute) -> dict[str, float]:
        """Insert the rows (idempotent); the digests new to the index, with ``created_at``."""
        created: dict[str, float] = {}
        if self.kind == "tree":
            # the same bytes may have been stored as a plain blob before; a tree names
            # other contents, which gc must know
            execute(insert_or_update(dialect, contents, ["digest"], ["kind"]), self.contents)
        else:
            new = insert_ignore(dialect, contents, ["digest"], returning=["digest"])
            created = dict.fromkeys(
                (row[0] for row in execute(new, self.contents)), self.created_at
            )
        execute(insert_ignore(dialect, placements, ["digest", "location"]), self.placements)
        if self.tags:
            execute(insert_or_update(dialect, tag_table, ["digest", "key"], ["value"]), self.tags)
        return created


def _executor(conn: Connection) -> Execute:
    def execute(statement: Any, rows: Sequence[Mapping[str, Any]]) -> Sequence[Sequence[Any]]:
        result = conn.execute(statement, rows)
        return result.all() if result.returns_rows else []

    return execute


class ContentStore:
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

    # -- writing blobs (not yet recorded) --------------------------------------------
    def _digest_of(self, hasher: Hasher) -> str:
        return f"{self.algorithm}:{hasher.hexdigest()}"

    def write_bytes(self, data: bytes, tags: Mapping[str, str] | None = None) -> Written:
        hasher = new_hasher(self.algorithm)
        hasher.update(data)
        digest = self._digest_of(hasher)
        key = self.router(digest, tags or {})
        self.backend.create(key, data)
        return Written(digest, len(data), key)

    def write_stream(
        self, source: Iterable[bytes] | BinaryIO, tags: Mapping[str, str] | None = None
    ) -> Written:
        hasher = new_hasher(self.algorithm)
        size = 0
        with self.backend.stage() as staged:
            for chunk in _chunks(source):
                hasher.update(chunk)
                staged.write(chunk)
                size += len(chunk)
            digest = self._digest_of(hasher)
            key = self.router(digest, tags or {})
            staged.commit(key)
        return Written(digest, size, key)

    def write_file(
        self,
        path: str | os.PathLike[str],
        tags: Mapping[str, str] | None = None,
        link: LinkMode = "copy",
        expected: os.stat_result | None = None,
    ) -> Written:
        """Store one regular file; the bytes are read once.

        ``expected`` is the file's stat from a directory scan: the file is stored only if
        it is still that file, unchanged, once read (which saves a stat per file).
        """
        with _source_file(path, expected) as (fd, before):
            if link == "copy" and before.st_size <= SMALL_FILE:
                # raw reads: a buffered file object costs four more system calls
                data = _read_whole(fd, before.st_size)
                _check_unchanged(fd, before, path)
                return self.write_bytes(data, tags)
            with open(fd, "rb", closefd=False) as f:
                if link != "copy":
                    written = self._write_linked(f, Path(path), before.st_size, tags, link)
                    if written is not None:
                        return written
                    f.seek(0)
                if self.files is not None and before.st_size >= CHUNK:
                    written = self._copy_file_in(fd, before.st_size, tags)
                else:
                    written = self.write_stream(f, tags)
                _check_unchanged(fd, before, path)
                return written

    def _copy_file_in(self, fd: int, size: int, tags: Mapping[str, str] | None) -> Written:
        """Store ``size`` bytes of the open file ``fd`` copied in the kernel, named by the
        hash of the copy itself (the caller checks that the file did not change)."""
        assert self.files is not None
        with self.files.stage() as staged:
            digest, copied = staged.copy_from(fd, size, self.algorithm)
            key = self.router(digest, tags or {})
            staged.commit(key)
        return Written(digest, copied, key)

    def read_small_file(
        self, path: str | os.PathLike[str], expected: os.stat_result, into: dict[str, bytes]
    ) -> str:
        """Read and hash a small regular file into ``into`` (digest -> bytes), to be
        stored with :meth:`write_packs`; returns its digest. ``expected`` as for
        :meth:`write_file`."""
        with _source_file(path, expected) as (fd, before):
            data = _read_whole(fd, before.st_size)
            _check_unchanged(fd, before, path)
        return self.hash_into(data, into)

    def hash_into(self, data: bytes, into: dict[str, bytes]) -> str:
        """Hash ``data`` into ``into`` (digest -> bytes) for :meth:`write_packs`; its digest."""
        hasher = new_hasher(self.algorithm)
        hasher.update(data)
        digest = self._digest_of(hasher)
        into.setdefault(digest, data)
        return digest

    def write_packs(self, blobs: Mapping[str, bytes]) -> list[Written]:
        """Store the ``blobs`` (digest -> bytes) that the index does not hold yet, in
        packs of up to :data:`~datakeep.packs.PACK_LIMIT` bytes, in the order given;
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

    def write_pack(self, blobs: Mapping[str, bytes]) -> list[Written]:
        """Store ``blobs`` (digest -> bytes) as one pack, whatever the index holds; they
        are not yet recorded."""
        key, data, entries = build_pack(blobs.items())
        self.backend.create(key, data)  # content-addressed: an existing pack is the same
        return [Written(e.digest, e.length, member_key(key, e.offset, e.length)) for e in entries]

    def blob_keys(self, prefix: str = "") -> Iterator[str]:
        """Every key in the backend starting with ``prefix`` (packs and quarantine too)."""
        if self.files is not None:  # a file backend lists without a stat per blob
            return self.files.keys(prefix)
        return (info.key for info in self.backend.list(prefix))

    def sync_blobs(self) -> None:
        """Make every blob written so far durable (a no-op where each write already is)."""
        if self.files is not None:
            self.files.sync()

    def _write_linked(
        self,
        f: BinaryIO,
        path: Path,
        size: int,
        tags: Mapping[str, str] | None,
        link: LinkMode,
    ) -> Written | None:
        """Store ``path`` by hard link or reflink; None means fall back to a copy."""
        files = self.files
        if files is None:
            if link == "hardlink":
                raise LinkUnsupported(f"backend {self.backend.name} cannot hold hard links")
            return None
        before = os.fstat(f.fileno())
        hasher = new_hasher(self.algorithm)
        for chunk in _chunks(f):
            hasher.update(chunk)
        _check_unchanged(f.fileno(), before, path)
        digest = self._digest_of(hasher)
        key = self.router(digest, tags or {})
        tries: list[Literal["reflink", "hardlink"]] = (
            ["hardlink"] if link == "hardlink" else ["reflink", "hardlink"]
        )
        for how in tries:
            if how == "reflink" and not self._reflink_ok:
                continue
            try:
                files.ingest(key, path, how)
            except LinkUnsupported:
                if how == "reflink":
                    self._reflink_ok = False
                    continue
                if link == "hardlink":
                    raise
                return None
            if os.stat(path).st_mtime_ns != before.st_mtime_ns:
                # changed between hashing and linking: the blob may not match its name
                self.backend.delete(key)
                raise InvalidInput(f"{path} changed while it was being stored")
            return Written(digest, size, key)
        return None

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
            return rows.insert(conn.dialect.name, _executor(conn))
        return self.db.transact(
            "recording content", lambda c: rows.insert(c.dialect.name, _executor(c))
        )

    def _durable_rows(
        self, written: Sequence[Written], tags: Mapping[str, str] | None, kind: str
    ) -> _IndexRows:
        """Sync the blobs to disk; the index rows that record them."""
        self.sync_blobs()
        tag_map = _check_tags(tags)
        now = time.time()
        # rows in digest order (tags in key order): concurrent writers then lock them in
        # the same order and cannot deadlock each other on PostgreSQL
        unique = {w.digest: w for w in sorted(written, key=lambda w: w.digest)}
        return _IndexRows(
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
        checked = _check_tags(tags)
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
        self, direct: DirectConnection, written: Written, rows: _IndexRows
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

    # -- lookups -----------------------------------------------------------------------
    def key_of(self, digest: str) -> str:
        """The backend key of a stored digest; :class:`NotFound` if not recorded."""
        return self._locate(digest)[1]

    def _locate(self, digest: str) -> tuple[int, str]:
        """(size, backend key) of a stored digest in one query; :class:`NotFound` if absent."""
        parse_digest(digest)
        with self.db.read("looking up a blob") as conn:
            row = conn.execute(
                select(contents.c.size, placements.c.pointer)
                .join(placements, placements.c.digest == contents.c.digest)
                .where(contents.c.digest == digest, placements.c.location == PRIMARY)
            ).first()
        if row is None:
            raise NotFound(f"no content {digest} in this keep")
        return int(row[0]), key_of_pointer(row[1])

    def keys_of(self, digests: Iterable[str], missing_ok: bool = False) -> dict[str, str]:
        """Backend keys of many digests at once; :class:`NotFound` names one that is absent
        (or, with ``missing_ok``, absent ones are left out)."""
        wanted = sorted(set(digests))
        keys: dict[str, str] = {}
        with self.db.read("looking up blobs") as conn:
            for i in range(0, len(wanted), 500):
                part = wanted[i : i + 500]
                rows = conn.execute(
                    select(placements.c.digest, placements.c.pointer).where(
                        placements.c.digest.in_(part), placements.c.location == PRIMARY
                    )
                )
                keys.update((d, key_of_pointer(p)) for d, p in rows)
        for digest in [] if missing_ok else wanted:
            if digest not in keys:
                raise NotFound(f"no content {digest} in this keep")
        return keys

    def exists(self, digest: str) -> bool:
        parse_digest(digest)
        with self.db.read("looking up content") as conn:
            return conn.execute(select(exists().where(contents.c.digest == digest))).scalar_one()

    def missing(self, digests: Iterable[str]) -> set[str]:
        """Those of ``digests`` that the index does not hold."""
        wanted = set(digests)
        found: set[str] = set()
        batch = sorted(wanted)
        with self.db.read("looking up content") as conn:
            for i in range(0, len(batch), 500):
                part = batch[i : i + 500]
                found.update(
                    conn.execute(
                        select(contents.c.digest).where(contents.c.digest.in_(part))
                    ).scalars()
                )
        return wanted - found

    def info(self, digest: str) -> Content:
        parse_digest(digest)
        items = self._load([digest])
        if not items:
            raise NotFound(f"no content {digest} in this keep")
        return items[0]

    def _load(self, digests: Sequence[str]) -> list[Content]:
        """Contents with their tags, in one query (a plain ``=`` for one digest, which
        SQLAlchemy caches whole: a put returns through here)."""
        if not digests:
            return []
        matches = (
            contents.c.digest == digests[0] if len(digests) == 1 else contents.c.digest.in_(digests)
        )
        query = (
            select(contents, tag_table.c.key, tag_table.c.value)
            .outerjoin(tag_table, tag_table.c.digest == contents.c.digest)
            .where(matches)
        )
        with self.db.read("reading content") as c:
            rows = c.execute(query).all()
        by_digest: dict[str, Content] = {}
        for digest, size, kind, created_at, key, value in rows:
            item = by_digest.get(digest)
            if item is None:
                item = by_digest[digest] = Content(digest, size, kind, created_at, {})
            if key is not None:
                item.tags[key] = value
        return [by_digest[d] for d in digests if d in by_digest]

    def find(
        self,
        tags: Mapping[str, str] | None = None,
        kind: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> Page:
        """Contents carrying every tag in ``tags``, by digest, ``limit`` at a time.

        Keyset paging: rows added meanwhile never make a page skip or repeat an item.
        """
        if limit < 1:
            raise InvalidInput("limit must be at least 1")
        tag_map = _check_tags(tags)
        query = select(contents.c.digest).order_by(contents.c.digest).limit(limit + 1)
        for key, value in tag_map.items():
            query = query.where(
                exists().where(
                    and_(
                        tag_table.c.digest == contents.c.digest,
                        tag_table.c.key == key,
                        tag_table.c.value == value,
                    )
                )
            )
        if kind is not None:
            query = query.where(contents.c.kind == kind)
        if after is not None:
            query = query.where(contents.c.digest > after)
        with self.db.read("listing content") as conn:
            digests = list(conn.execute(query).scalars())
        more = len(digests) > limit
        digests = digests[:limit]
        return Page(self._load(digests), digests[-1] if more else None)

    def iter_all(self, kind: str | None = None) -> Iterator[Content]:
        after: str | None = None
        while True:
            page = self.find(kind=kind, limit=1000, after=after)
            yield from page.items
            if page.next is None:
                return
            after = page.next

    # -- tags ----------------------------------------------------------------------------
    def tag(self, digest: str, tag_map: Mapping[str, str]) -> None:
        checked = _check_tags(tag_map)
        self.info(digest)
        rows = [{"digest": digest, "key": k, "value": v} for k, v in sorted(checked.items())]
        with self.leases.shared():  # a tag makes content live: not while gc sweeps
            self.db.transact(
                "tagging",
                lambda c: c.execute(
                    insert_or_update(c, tag_table, ["digest", "key"], ["value"]), rows
                ),
            )

    def untag(self, digest: str, keys: Iterable[str]) -> int:
        """Remove only the named tags; returns how many were removed."""
        parse_digest(digest)
        names = sorted(set(keys))

        def run(conn: Connection) -> int:
            return conn.execute(
                tag_table.delete().where(tag_table.c.digest == digest, tag_table.c.key.in_(names))
            ).rowcount

        return self.db.transact("untagging", run)

    # -- reading, always verified ---------------------------------------------------------
    def open_blob(self, key: str, digest: str) -> BinaryIO:
        """The raw, unverified bytes behind a placement key (inline, in a pack or a blob
        of its own in the backend)."""
        member = pack_member(key)
        if member is not None:
            return io.BytesIO(self.backend.read(member.pack, member.offset, member.end))
        if key != INLINE_KEY:
            return self.backend.open(key)
        with self.db.read("reading an inline blob") as conn:
            data = conn.execute(
                select(inline_blobs.c.data).where(inline_blobs.c.digest == digest)
            ).scalar()
        if data is None:
            raise NotFound(f"inline blob of {digest} is missing from the index")
        return io.BytesIO(data)

    def open(self, digest: str) -> io.BufferedReader:
        size, key = self._locate(digest)
        return io.BufferedReader(VerifiedReader(self.open_blob(key, digest), digest, size), CHUNK)

    def get(self, digest: str) -> bytes:
        size, key = self._locate(digest)
        with self.open_blob(key, digest) as raw:
            reader = VerifiedReader(raw, digest, size)
            buffer = bytearray(size + 1)
            view = memoryview(buffer)
            filled = 0
            while n := reader.readinto(view[filled:]):
                filled += n
        del view
        del buffer[filled:]
        return bytes(buffer)

    def read_many(self, items: Sequence[Stored]) -> Iterator[tuple[Stored, bytes | DatakeepError]]:
        """The verified bytes of many small stored contents, in the order given, each with
        the error that stands for it instead if it is missing or wrong. Read by key with no
        index lookup; the members of one pack with one read of the span they cover."""
        spans: dict[str, tuple[int, int]] = {}
        for item in items:
            member = pack_member(item.key)
            if member is not None:
                start, end = spans.get(member.pack, (member.offset, member.end))
                spans[member.pack] = (min(start, member.offset), max(end, member.end))
        loaded: dict[str, tuple[int, bytes] | NotFound] = {}

        def raw(item: Stored) -> bytes:
            member = pack_member(item.key)
            if member is None:
                with self.open_blob(item.key, item.digest) as f:
                    return f.read()
            if member.pack not in loaded:
                start, end = spans[member.pack]
                try:
                    loaded[member.pack] = (start, self.backend.read(member.pack, start, end))
                except NotFound as exc:
                    loaded[member.pack] = exc  # it stands for every member of the pack
            span = loaded[member.pack]
            if isinstance(span, NotFound):
                raise span
            return span[1][member.offset - span[0] : member.end - span[0]]

        for item in items:
            try:
                data = raw(item)
                check_bytes(data, item.digest, item.size)
            except DatakeepError as exc:
                yield item, exc
                continue
            yield item, data

    def stream(self, digest: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        with self.open(digest) as reader:
            while chunk := reader.read(chunk_size):
                yield chunk

    def stored(self, digests: Sequence[str] | None = None) -> Iterator[Stored]:
        """The recorded contents with their keys, by digest: those of ``digests`` (absent
        ones are skipped) or every one, read a page at a time."""
        query = (
            select(contents.c.digest, contents.c.size, contents.c.kind, placements.c.pointer)
            .join(placements, placements.c.digest == contents.c.digest)
            .where(placements.c.location == PRIMARY)
            .order_by(contents.c.digest)
        )

        def rows(q: Any) -> list[Stored]:
            with self.db.read("listing content") as conn:
                return [Stored(d, n, k, key_of_pointer(p)) for d, n, k, p in conn.execute(q)]

        if digests is not None:
            wanted = sorted(set(digests))
            for i in range(0, len(wanted), 500):
                yield from rows(query.where(contents.c.digest.in_(wanted[i : i + 500])))
            return
        after = ""
        while page := rows(query.where(contents.c.digest > after).limit(5000)):
            yield from page
            after = page[-1].digest

    def check(self, item: Stored) -> None:
        """Re-hash a stored blob: :class:`NotFound` if it is gone, :class:`IntegrityError`
        if its bytes are not the content, ``OSError`` if it cannot be read."""
        if self.files is not None and stored_as_file(item.key):
            verify_file(self.files.path_of(item.key), item.digest, item.size)
        else:
            with self.open_blob(item.key, item.digest) as raw:
                drain_verified(raw, item.digest, item.size)

    def verify(self, digest: str) -> Content:
        """Re-hash one stored blob; :class:`IntegrityError` if it does not match."""
        info = self.info(digest)
        with self.open_blob(self.key_of(digest), digest) as raw:
            drain_verified(raw, digest, info.size)
        return info

    def export_file(
        self,
        key: str,
        digest: str,
        size: int,
        dest: Path,
        link: LinkMode = "copy",
        mode: int | None = None,
        atomic: bool = True,
    ) -> bool:
        """Write the blob at ``key`` to ``dest`` (which must not exist), verified.

        Returns True if ``dest`` was hard-linked to the stored blob (read-only and shared;
        ``mode`` is then not applied), False if it is a copy. With ``atomic`` the copy is
        written beside ``dest`` and renamed once verified; a caller that already builds in
        a private directory (tree export) passes False and saves the rename.
        """
        target = dest.with_name(f".{dest.name}.datakeep-tmp") if atomic else dest
        try:
            if self.files is not None and stored_as_file(key):
                source = self.files.path_of(key)
                if link != "copy":
                    verify_file(source, digest, size)
                    try:
                        os.link(source, dest)
                        return True
                    except (FileExistsError, FileNotFoundError):
                        raise
                    except OSError:
                        if link == "hardlink":
                            raise LinkUnsupported(f"cannot hard-link {digest} to {dest}") from None
                try:
                    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    raise NotFound(f"blob of {digest} is missing from the store") from None
                try:
                    if size >= CHUNK:
                        with open(target, "x+b") as dst:
                            copy_verified(src, dst.fileno(), digest, size)
                    else:
                        data = _read_whole(src, size)
                        check_bytes(data, digest, size)
                        write_new_file(target, data, mode)
                        mode = None  # already set, on the open file
                finally:
                    os.close(src)
            else:
                if link == "hardlink":
                    raise LinkUnsupported(f"{digest} is not stored as a file: cannot hard-link")
                with self.open_blob(key, digest) as raw, open(target, "xb") as out:
                    drain_verified(raw, digest, size, out.write)
            if mode is not None:
                os.chmod(target, mode)
            if atomic:
                os.rename(target, dest)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return False


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


def write_new_file(path: str | os.PathLike[str], data: bytes, mode: int | None = None) -> None:
    """Create ``path`` (it must not exist) holding ``data``, with ``mode`` if given."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if mode is not None:
            os.fchmod(fd, mode)  # on the open file: no second path lookup
    finally:
        os.close(fd)


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


def _chunks(source: Iterable[bytes] | BinaryIO) -> Iterator[bytes | bytearray | memoryview]:
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
def _source_file(
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
        if isinstance(exc, StorageError):
            raise
        raise InvalidInput(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from exc


def _read_whole(fd: int, size: int) -> bytes:
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


def _check_unchanged(fd: int, before: os.stat_result, path: str | os.PathLike[str]) -> None:
    """After reading: still the same file (inode), with the size and mtime it had."""
    after = os.fstat(fd)
    if (after.st_ino, after.st_size, after.st_mtime_ns) != (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    ):
        raise InvalidInput(f"{os.fspath(path)} changed while it was being stored; try again")
