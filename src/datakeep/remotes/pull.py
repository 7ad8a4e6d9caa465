"""Pull: bring back from a remote what the keep lacks, every blob re-hashed before it is
recorded; trees bring their files along."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from sqlalchemy import select

from ..backends import Backend
from ..content import PACKED_MAX, ContentStore, Written
from ..content.packs import (
    pack_pointer,
)
from ..digest import parse_digest
from ..errors import IntegrityError, NotFound, StorageError
from ..index import contents, placements
from ..progress import Progress, ProgressCallback
from ..trees.format import TREE_FORMAT, tree_members
from .budget import MemoryBudget, in_flight, in_order
from .listing import listed, pack_tables
from .registry import BATCH, WORKERS, TransferReport, get_remote

__all__ = ["pull"]

# What a blob fetched whole holds while it streams in: the source's chunks (S3: 1 MiB
# apiece, a few ahead) and the content store's.
_STREAM_HOLDS = 8 << 20


def pull(
    store: ContentStore,
    name: str,
    digests: Iterable[str] | None = None,
    progress: ProgressCallback | None = None,
    everything: bool = False,
) -> TransferReport:
    """Bring from remote ``name`` what this keep lacks or holds only damaged: ``digests``
    (trees with their files), or everything the inventory says the remote holds, or with
    ``everything`` all the remote holds, found by listing it.

    A content the index records is wanted, not taken as here: its local copy is re-hashed,
    and a missing or damaged one is fetched again (the damaged bytes set aside under
    ``quarantine/``). Every blob is re-hashed on the way in and refused
    (:class:`IntegrityError`, nothing recorded) if it is not the content its name
    promises."""
    remote = get_remote(store, name)
    if everything:
        wanted = listed(store, remote.open())
    elif digests is None:
        with store.db.read("reading the remote inventory") as conn:
            wanted = list(
                conn.execute(
                    select(placements.c.digest).where(placements.c.location == name)
                ).scalars()
            )
    else:
        wanted = [str(parse_digest(d)) for d in digests]
    report = TransferReport()
    with store.leases.shared():
        pull_into(store, name, remote.open(), wanted, report, progress)
    return report


def pull_into(
    store: ContentStore,
    name: str,
    source: Backend,
    digests: Sequence[str],
    report: TransferReport,
    progress: ProgressCallback | None,
    failures: dict[str, str] | None = None,
) -> None:
    """Fetch ``digests`` and the files of the trees among them from remote ``name``
    (``source``) where this keep lacks them or holds them damaged. With ``failures``, a
    content that cannot be fetched is noted there (digest -> why) instead of raised.
    The caller holds a shared lease."""
    roots, not_trees = _fetch(store, name, source, digests, report, progress, failures)
    failed = failures or {}
    named = {
        d: m
        for d in roots
        if d not in failed and d not in not_trees and (m := _tree_members_of(store, d)) is not None
    }
    del roots, not_trees
    trees = sorted(named)
    members = sorted({m for names in named.values() for m in names})
    del named
    _fetch(store, name, source, members, report, progress, failures)
    if trees:
        store.db.transact(
            "marking pulled trees",
            lambda c: c.execute(
                contents.update().where(contents.c.digest.in_(trees)).values(kind="tree")
            ),
        )


def _record_blobs(store: ContentStore, batch: list[Written]) -> None:
    # replace: a fetched copy takes the place of a damaged one the index still names
    store.record(batch, replace=True)
    batch.clear()


def _good_here(store: ContentStore, digests: Sequence[str]) -> set[str]:
    """Those of ``digests`` whose local copy is recorded and passes its check; a damaged
    copy is set aside so that the fetched one can take its place."""
    return {
        item.digest for item in store.stored(digests) if store.check_or_set_aside(item) == "good"
    }


def _tree_members_of(store: ContentStore, digest: str) -> list[str] | None:
    """The digests a stored tree names, or None if the content is not a tree (only its
    first bytes are read then, so a large blob is not loaded to find out)."""
    with store.open(digest) as reader:
        if reader.read(len(TREE_FORMAT) + 1) != f"{TREE_FORMAT}\n".encode():
            return None
    try:
        return tree_members(store.get(digest), store.algorithm)
    except IntegrityError:
        return None


def _fetch(
    store: ContentStore,
    name: str,
    source: Backend,
    digests: Sequence[str],
    report: TransferReport,
    progress: ProgressCallback | None,
    failures: dict[str, str] | None = None,
) -> tuple[list[str], set[str]]:
    """Copy from ``source``, verified, those of ``digests`` that are not good here;
    returns all of them, and those seen on the way not to be trees (small blobs whose
    bytes do not start as a manifest does, so that they need not be read again to find
    out). ``failures`` as for :func:`pull_into`."""
    held = _good_here(store, digests)
    lacking = [d for d in sorted(set(digests)) if d not in held]
    unreadable: list[str] = []
    where = _locate(store, name, source, lacking, unreadable)
    singles = [[d] for d in lacking if where.get(d, _UNPLACED).pack is None]
    by_pack: dict[str, list[str]] = {}
    for d in lacking:
        pack = where.get(d, _UNPLACED).pack
        if pack is not None:
            by_pack.setdefault(pack, []).append(d)
    not_trees: set[str] = set()
    tree_head = f"{TREE_FORMAT}\n".encode()

    budget = MemoryBudget(in_flight(source))

    def fetch(unit: list[str]) -> list[Written]:
        place = where.get(unit[0], _UNPLACED)
        if place.pack is None:
            digest = unit[0]
            key = place.key or store.router(digest, {})
            try:
                raw = source.open(key)
            except NotFound:
                if unreadable:
                    raise IntegrityError(
                        f"{digest} is not on the remote as an object, and these packs are "
                        f"unreadable: {'; '.join(unreadable)}; nothing was recorded"
                    ) from None
                raise
            with raw, budget.hold(_STREAM_HOLDS):
                return [_checked(store.write_stream(raw), digest, key)]
        pack = place.pack
        places = [where[d] for d in unit]
        start = min(p.offset for p in places)
        end = max(p.offset + p.length for p in places)
        # the span, the members cut from it and the pack of ours they make
        with budget.hold(3 * (end - start)):
            span = source.read(pack, start, end)  # one ranged request per pack
            written: list[Written] = []
            small: dict[str, bytes] = {}
            for d, p in zip(unit, places, strict=True):
                data = span[p.offset - start : p.offset - start + p.length]
                if len(data) <= PACKED_MAX:  # verified here, then kept in a pack of ours
                    _check_named(store.hash_into(data, small), d, pack)
                else:
                    written.append(_checked(store.write_bytes(data), d, pack))
                if not data.startswith(tree_head):
                    not_trees.add(d)
            del span
            return written + (store.write_pack(small) if small else [])

    def fetch_or_note(unit: list[str]) -> list[Written]:
        try:
            return fetch(unit)
        except (NotFound, IntegrityError, StorageError) as exc:
            assert failures is not None
            failures.update(dict.fromkeys(unit, str(exc)))
            return []

    batch: list[Written] = []
    # whatever arrived verified is recorded, even if a later blob fails
    try:
        with ThreadPoolExecutor(WORKERS) as pool:
            units = [*singles, *by_pack.values()]
            work = fetch if failures is None else fetch_or_note
            for written_unit in in_order(pool, work, units, 2 * WORKERS):
                for written in written_unit:
                    batch.append(written)
                    report.transferred += 1
                    report.nbytes += written.size
                    if progress is not None:
                        progress(Progress("pull", report.transferred, len(lacking), written.size))
                if len(batch) >= BATCH:
                    _record_blobs(store, batch)
    finally:
        _record_blobs(store, batch)
    report.already += len(held)
    return sorted(set(digests)), not_trees


def _checked(written: Written, digest: str, where: str) -> Written:
    _check_named(written.digest, digest, where)
    return written


def _check_named(actual: str, digest: str, where: str) -> None:
    if actual != digest:
        raise IntegrityError(
            f"remote object {where} does not hold {digest}: the bytes hash to "
            f"{actual}; nothing was recorded"
        )


class _Place(NamedTuple):
    """Where a blob is on a remote: a range of a pack, or an object of its own."""

    pack: str | None
    offset: int = 0
    length: int = 0
    key: str | None = None


_UNPLACED = _Place(None)
"""A blob looked for under its usual key."""


def _place(pointer: dict[str, Any], packs: dict[str, str]) -> _Place:
    """A placement pointer as a :class:`_Place`; each pack's name held once (``packs``),
    not once per blob: 100,000 small blobs are in a handful of packs."""
    if "pack" in pointer:
        pack = str(pointer["pack"])
        return _Place(packs.setdefault(pack, pack), int(pointer["offset"]), int(pointer["length"]))
    return _Place(None, key=str(pointer["key"]))


def _locate(
    store: ContentStore,
    name: str,
    source: Backend,
    digests: Sequence[str],
    unreadable: list[str],
) -> dict[str, _Place]:
    """Where each digest is on the remote: from the inventory, else from the tables of the
    remote's packs (a keep that never pushed there has no inventory); a digest found in
    neither is looked for under its usual key."""
    found: dict[str, _Place] = {}
    packs: dict[str, str] = {}
    for i in range(0, len(digests), BATCH):
        part = digests[i : i + BATCH]
        query = select(placements.c.digest, placements.c.pointer).where(
            placements.c.location == name, placements.c.digest.in_(part)
        )
        with store.db.read("reading the remote inventory") as conn:
            pointers = {d: p for d, p in conn.execute(query)}
        # keyed by the caller's strings, not new ones per row
        found.update((d, _place(json.loads(pointers[d]), packs)) for d in part if d in pointers)
    if len(found) < len(set(digests)):
        wanted = {d: d for d in digests if d not in found}
        for key, entry in pack_tables(source, unreadable):
            digest = wanted.get(entry.digest)
            if digest is not None and digest not in found:
                found[digest] = _place(pack_pointer(key, entry), packs)
    return found
