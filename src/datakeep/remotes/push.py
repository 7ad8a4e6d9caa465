"""Push: copy to a remote what its inventory lacks, verified on the way out; small blobs
travel in packs, large ones as objects of their own. The inventory is written only after
the remote holds the blobs durably."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import aliased

from ..backends import Backend, FileBackend
from ..content import PRIMARY, ContentStore, Stored, key_of_pointer, pointer_of
from ..content.packs import (
    PACK_LIMIT,
    PACKABLE,
    build_pack,
    member_key,
    pack_member,
    pack_pointer,
)
from ..digest import parse_digest
from ..errors import DatakeepError, IntegrityError, NotFound
from ..index import contents, placements
from ..index.upsert import insert_ignore
from ..progress import Progress, ProgressCallback
from ..trees.format import tree_members
from .budget import MemoryBudget, in_flight, in_order
from .listing import listed
from .registry import BATCH, WORKERS, TransferReport, forget_held, get_remote

__all__ = ["push"]

# What one large blob holds while it is sent: file to file, the one window of the copy
# mapped to hash it (copying's 8 MiB step; the kernel copies the next one meanwhile);
# what a staged object buffers (S3: 16 MiB, then 8 MiB parts, two in flight, plus the
# reader's 1 MiB).
_FILE_COPY_HOLDS = 8 << 20
# Packs sent are half the size a put makes: building one holds it three times over (the
# members read, the pack, the span of the keep's pack read), so two fit the budget at
# once. A remote's packs of any size are read alike.
_PACK_LIMIT = PACK_LIMIT // 2
_STAGED_HOLDS = 40 << 20
# Blobs up to this size go to an object store as one create-only PUT, held whole; larger
# ones are staged (obstore cannot make a multipart upload conditional, so a staged blob
# is uploaded beside its key and copied into place: a push of D1 to S3 took 14.5 s that
# way, 6 s whole). At most one held whole over the budget at once: 128 MiB beyond the
# rest of the process, within 256 MB (issue 25).
_WHOLE_PUT = 128 << 20
_READ_HOLDS = 1 << 20
# rows per query when the whole keep is pushed
_PAGE = 5000


def _with_members(store: ContentStore, digests: Iterable[str]) -> list[str]:
    """The digests and, for trees, every file they name."""
    wanted = {str(parse_digest(d)) for d in digests}
    for item in store.stored(sorted(wanted)):
        if item.kind == "tree":
            wanted.update(tree_members(store.get(item.digest), store.algorithm))
    missing = store.missing(wanted)
    if missing:
        raise NotFound(f"not in this keep: {', '.join(sorted(missing)[:3])}")
    return sorted(wanted)


def _unsent(
    store: ContentStore, name: str, digests: Sequence[str] | None
) -> Iterator[tuple[str, int, str]]:
    """(digest, size, pointer) of what is at the primary and not yet at remote ``name``,
    read a page at a time."""
    theirs = aliased(placements)
    query = (
        select(contents.c.digest, contents.c.size, placements.c.pointer)
        .join(
            placements,
            and_(placements.c.digest == contents.c.digest, placements.c.location == PRIMARY),
        )
        .where(
            ~exists().where(and_(theirs.c.digest == contents.c.digest, theirs.c.location == name))
        )
        .order_by(contents.c.digest)
    )

    def page(q: Any) -> list[tuple[str, int, str]]:
        with store.db.read("finding what the remote lacks") as conn:
            return [(d, n, p) for d, n, p in conn.execute(q)]

    if digests is not None:
        for i in range(0, len(digests), BATCH):
            yield from page(query.where(contents.c.digest.in_(digests[i : i + BATCH])))
        return
    after = ""
    while rows := page(query.where(contents.c.digest > after).limit(_PAGE)):
        yield from rows
        after = rows[-1][0]


class _Todo:
    """What a push sends, in the order the keep's packs hold it, at about 130 bytes a
    blob: a record of (object, offset, length, size) packed to sort as bytes, then the
    digest, with each object's key held once (a row of the index, a tuple and its
    strings took 700 bytes, 100,000 small files 70 MB)."""

    _RECORD = struct.Struct(">IQQQ")

    def __init__(self, rows: Iterable[tuple[str, int, str]]) -> None:
        self._objects: list[str] = []
        self._records: list[bytes] = []
        number: dict[str, int] = {}
        for digest, size, pointer in rows:
            key = key_of_pointer(pointer)
            member = pack_member(key)
            # a member's length is stored plus one: 0 marks a blob of its own
            obj, offset, length = (
                (key, 0, 0) if member is None else (member.pack, member.offset, member.length + 1)
            )
            index = number.setdefault(obj, len(number))
            if index == len(self._objects):
                self._objects.append(obj)
            self._records.append(self._RECORD.pack(index, offset, length, size) + digest.encode())
        # small blobs in the order the keep's packs hold them: a pack sent then reads one
        # short span of each pack of the keep, not nearly all of every one (which held
        # 40 MB to send 8 MiB)
        self._records.sort()

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[Stored]:
        for record in self._records:
            index, offset, length, size = self._RECORD.unpack_from(record)
            obj = self._objects[index]
            key = member_key(obj, offset, length - 1) if length else obj
            # the kind is not kept: sending a content does not depend on it
            yield Stored(record[self._RECORD.size :].decode(), size, "blob", key)


def push(
    store: ContentStore,
    name: str,
    digests: Iterable[str] | None = None,
    progress: ProgressCallback | None = None,
    verify: bool = False,
) -> TransferReport:
    """Copy to remote ``name`` what it lacks: everything, or ``digests`` (trees with their
    files). Only blobs the index does not already place there are sent; with ``verify``,
    the remote is listed first and what the inventory places there but the listing lacks
    is sent again."""
    remote = get_remote(store, name)
    target = remote.open()
    if verify:
        _trust_the_listing(store, name, target)
    chosen = None if digests is None else _with_members(store, digests)
    report = TransferReport()
    todo = _Todo(_unsent(store, name, chosen))
    del chosen

    budget = MemoryBudget(in_flight(target))

    def send(unit: list[Stored]) -> list[tuple[str, int, str, bool]]:
        """Store one large blob as its own object, or a pack of small ones."""
        if len(unit) == 1 and unit[0].size > PACKABLE:
            digest, size, key = unit[0].digest, unit[0].size, unit[0].key
            if store.files is not None and isinstance(target, FileBackend):
                with budget.hold(_FILE_COPY_HOLDS):
                    written = _copy_file_to_file(store.files, target, key, digest, size)
                return [(digest, size, pointer_of(key), written)]
            if size <= _WHOLE_PUT:
                # held whole, alone if it is larger than the budget: one create-only PUT,
                # not a staged upload copied into place (twice the work, server-side)
                with budget.hold(size + _READ_HOLDS):
                    written = target.create(key, _read_whole(store, digest, size))
                return [(digest, size, pointer_of(key), written)]
            with (
                budget.hold(_STAGED_HOLDS),
                store.open(digest) as reader,
                target.stage() as staged,
            ):
                while chunk := reader.read(1 << 20):
                    staged.write(chunk)
                written = staged.commit(key)
            return [(digest, size, pointer_of(key), written)]
        # read by their keys, verified, each pack of the keep once; held: the members
        # read, the pack built of them and a slice of the keep's pack
        with budget.hold(3 * sum(item.size for item in unit)):
            key, data, entries = build_pack(_verified(store.read_many(unit)))
            written = target.create(key, data)  # content-addressed: the same pack if it exists
            del data
        return [(e.digest, e.length, json.dumps(pack_pointer(key, e)), written) for e in entries]

    recorded: list[dict[str, Any]] = []

    def account(sent: list[tuple[str, int, str, bool]]) -> None:
        for digest, size, pointer, written in sent:
            row = {"digest": digest, "location": name, "backend": target.name}
            recorded.append({**row, "pointer": pointer})
            if written:
                report.transferred += 1
                report.nbytes += size
            else:
                report.already += 1
            if progress is not None:
                done = report.transferred + report.already
                progress(Progress("push", done, len(todo), size))

    flush = partial(_record_placements, target=target)
    try:  # whatever reached the remote is recorded, even if a later object fails
        with ThreadPoolExecutor(WORKERS) as pool:
            for sent in in_order(pool, send, _units(todo), 2 * WORKERS):
                account(sent)
                if len(recorded) >= BATCH:
                    flush(store, recorded)
    finally:
        flush(store, recorded)
    return report


def _copy_file_to_file(
    source: FileBackend, target: FileBackend, key: str, digest: str, size: int
) -> bool:
    """Copy the blob ``key`` in the kernel, hashing the copy itself as it lands (a window
    at a time: a whole large blob is never mapped or held), and publish it only if it is
    the content ``digest``; False if the target holds ``key`` already."""
    if target.path_of(key).exists():
        return False
    try:
        src = os.open(source.path_of(key), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"blob of {digest} is missing from the store") from None
    try:
        with target.stage() as staged:
            # hashed on this thread: the push's workers keep the cores busy already
            algorithm = digest.partition(":")[0]
            copied_digest, copied = staged.copy_from(src, size, algorithm, overlap=False)
            if copied < size:
                raise IntegrityError(f"{digest} is truncated: {copied} of {size} bytes stored")
            if os.fstat(src).st_size > size:
                raise IntegrityError(f"{digest} is longer than its recorded {size} bytes")
            if copied_digest != digest:
                raise IntegrityError(
                    f"{digest} is corrupted: its stored bytes hash to {copied_digest}"
                )
            return staged.commit(key)
    finally:
        os.close(src)


def _read_whole(store: ContentStore, digest: str, size: int) -> bytes:
    """The verified bytes of ``digest``, read into one buffer (asking one byte more than
    its size, so a longer blob is noticed, not cut)."""
    with store.open(digest) as reader:
        return reader.read(size + 1)


def _trust_the_listing(store: ContentStore, name: str, target: Backend) -> None:
    """Drop the inventory rows of what remote ``name`` does not list (lost since)."""
    present = set(listed(store, target))
    with store.db.read("reading the remote inventory") as conn:
        placed = conn.execute(
            select(placements.c.digest).where(placements.c.location == name)
        ).scalars()
        gone = [d for d in placed if d not in present]
    forget_held(store, name, gone)


def _verified(read: Iterator[tuple[Stored, bytes | DatakeepError]]) -> Iterator[tuple[str, bytes]]:
    """(digest, bytes) of what :meth:`ContentStore.read_many` gave; its first error raised."""
    for item, data in read:
        if isinstance(data, DatakeepError):
            raise data
        yield item.digest, data


def _units(items: Iterable[Stored]) -> Iterator[list[Stored]]:
    """Large blobs one by one; small ones grouped into packs of about _PACK_LIMIT bytes."""
    pack: list[Stored] = []
    size = 0
    for item in items:
        if item.size > PACKABLE:
            yield [item]
            continue
        pack.append(item)
        size += item.size
        if size >= _PACK_LIMIT:
            yield pack
            pack, size = [], 0
    if pack:
        yield pack


def _record_placements(
    store: ContentStore, rows: list[dict[str, Any]], target: Backend | None = None
) -> None:
    """The inventory: written only after the remote holds the blobs, durably (then
    cleared)."""
    if rows and isinstance(target, FileBackend):
        target.sync()
    if rows:
        batch = sorted(rows, key=lambda r: r["digest"])
        store.db.transact(
            "recording the remote inventory",
            lambda c: c.execute(insert_ignore(c, placements, ["digest", "location"]), batch),
        )
        rows.clear()
