"""Push: copy to a remote what its inventory lacks, verified on the way out; small blobs
travel in packs, large ones as objects of their own. The inventory is written only after
the remote holds the blobs durably."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import aliased

from ..backends import Backend, FileBackend
from ..content import PRIMARY, ContentStore, Stored, key_of_pointer, pointer_of
from ..content.packs import PACK_LIMIT, PACKABLE, build_pack, pack_member, pack_pointer
from ..digest import parse_digest
from ..errors import DatakeepError, IntegrityError, NotFound
from ..index import contents, placements
from ..index.upsert import insert_ignore
from ..progress import Progress, ProgressCallback
from ..trees.format import tree_members
from .budget import IN_FLIGHT, MemoryBudget
from .listing import listed
from .registry import BATCH, WORKERS, TransferReport, forget_held, get_remote

__all__ = ["push"]

# What one large blob holds while it is sent: a window of the copy mapped to hash it
# (file to file), or what a staged object buffers (S3: 16 MiB, then 8 MiB parts, two
# in flight, plus the reader's 1 MiB).
_FILE_COPY_HOLDS = 16 << 20
# Packs sent are half the size a put makes: building one holds it three times over (the
# members read, the pack, the span of the keep's pack read), so two fit the budget at
# once. A remote's packs of any size are read alike.
_PACK_LIMIT = PACK_LIMIT // 2
_STAGED_HOLDS = 40 << 20


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


def _unsent(store: ContentStore, name: str, digests: Sequence[str] | None) -> Iterator[Any]:
    """(digest, size, kind, pointer) at the primary and not yet at remote ``name``."""
    theirs = aliased(placements)
    query = (
        select(contents.c.digest, contents.c.size, contents.c.kind, placements.c.pointer)
        .join(
            placements,
            and_(placements.c.digest == contents.c.digest, placements.c.location == PRIMARY),
        )
        .where(
            ~exists().where(and_(theirs.c.digest == contents.c.digest, theirs.c.location == name))
        )
        .order_by(contents.c.digest)
    )
    parts = (
        [None]
        if digests is None
        else [digests[i : i + BATCH] for i in range(0, len(digests), BATCH)]
    )
    for part in parts:
        q = query if part is None else query.where(contents.c.digest.in_(part))
        with store.db.read("finding what the remote lacks") as conn:
            yield from conn.execute(q).all()


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
    # small blobs in the order the keep's packs hold them: a pack sent then reads one
    # short span of each pack of the keep, not nearly all of every one (which held 40 MB
    # to send 8 MiB)
    todo = sorted(_unsent(store, name, chosen), key=_where_stored)

    budget = MemoryBudget(IN_FLIGHT)

    def send(unit: list[Any]) -> list[tuple[str, int, str, bool]]:
        """Store one large blob as its own object, or a pack of small ones."""
        if len(unit) == 1 and unit[0][1] > PACKABLE:
            digest, size, _kind, pointer = unit[0]
            key = key_of_pointer(pointer)
            if store.files is not None and isinstance(target, FileBackend):
                with budget.hold(_FILE_COPY_HOLDS):
                    written = _copy_file_to_file(store.files, target, key, digest, size)
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
        # read by their keys, verified, each pack of the keep once
        stored = [Stored(d, size, kind, key_of_pointer(pointer)) for d, size, kind, pointer in unit]
        # the members read, the pack built of them and a slice of the keep's pack
        with budget.hold(3 * sum(item.size for item in stored)):
            key, data, entries = build_pack(_verified(store.read_many(stored)))
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
            for sent in pool.map(send, _units(todo)):
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
            copied_digest, copied = staged.copy_from(src, size, digest.partition(":")[0])
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


def _where_stored(row: Any) -> tuple[str, int]:
    """(pack, offset) of a packed blob, (its key, 0) for a blob of its own."""
    key = key_of_pointer(row[3])
    member = pack_member(key)
    return (key, 0) if member is None else (member.pack, member.offset)


def _units(rows: list[Any]) -> Iterator[list[Any]]:
    """Large blobs one by one; small ones grouped into packs of about _PACK_LIMIT bytes."""
    pack: list[Any] = []
    size = 0
    for row in rows:
        if row[1] > PACKABLE:
            yield [row]
            continue
        pack.append(row)
        size += row[1]
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
