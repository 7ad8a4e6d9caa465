"""Garbage collection: mark from every root, sweep the rest, spare what is young.

Mark: the roots (pins, tags, every :class:`~datakeep.maintenance.roots.RootProvider`)
and every content younger than the grace period are live, and so is everything a live
tree names. Sweep: index rows of the other contents are deleted (trees before the blobs
they name, so no tree is ever left naming a missing blob), then their blobs; finally
blobs that no index row names (orphans a crash left) once they are older than the grace.

A content kept in a pack goes with its row, but its bytes stay until the pack goes: a
pack whose every member was swept is deleted, one with more dead than live bytes is
rewritten with only its live members (verified; their rows then point to the new pack),
and the dead bytes of a mostly live pack are left for a later gc (``retained_bytes``).

gc holds the keep's exclusive lease (see :mod:`datakeep.index.lease`) while it marks and
sweeps, so no put can re-use a blob it is about to delete; puts wait meanwhile. A dry run
takes no lease and deletes nothing. A crash between deleting rows and deleting blobs
leaves orphans, which the next gc removes.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from sqlalchemy import Connection, bindparam, select, update

from ..content import (
    PRIMARY,
    QUARANTINE,
    ContentStore,
    Stored,
    key_of_pointer,
    pointer_of,
    stored_as_file,
)
from ..content.packs import object_key, pack_member
from ..errors import DatakeepError, IntegrityError, NotFound
from ..index import contents, placements
from ..progress import Progress, ProgressCallback
from ..trees.format import tree_members
from .roots import root_providers

__all__ = ["DEFAULT_GRACE_S", "QUARANTINE", "GcReport", "collect_garbage", "orphan_blobs"]

DEFAULT_GRACE_S = 24 * 3600.0
"""Key prefix of blobs fsck set aside as corrupted: never orphans, never swept."""
_BATCH = 500


@dataclass(slots=True)
class GcReport:
    """What gc removed, or with ``dry_run`` would remove."""

    dry_run: bool
    roots: dict[str, int] = field(default_factory=dict)
    """Root digests found per provider (pins, tags, ...)."""
    live: int = 0
    """Contents kept because a root reaches them."""
    young: int = 0
    """Unreachable contents kept because they are younger than the grace period."""
    swept: list[str] = field(default_factory=list)
    """Digests of the contents removed."""
    swept_bytes: int = 0
    orphans: list[str] = field(default_factory=list)
    """Keys of blobs removed that no index row named."""
    orphan_bytes: int = 0
    repacked: list[str] = field(default_factory=list)
    """Keys of packs deleted (every member swept) or rewritten (mostly swept)."""
    retained_bytes: int = 0
    """Bytes of swept contents left inside packs that are still mostly live."""
    temp_files: list[str] = field(default_factory=list)
    """Names of temporary files removed that killed writes left (never published)."""
    temp_bytes: int = 0

    @property
    def reclaimed_bytes(self) -> int:
        return self.swept_bytes - self.retained_bytes + self.orphan_bytes + self.temp_bytes


@dataclass(slots=True)
class _PackUse:
    """What a sweep leaves of one pack."""

    live: list[Stored] = field(default_factory=list)
    live_bytes: int = 0
    dead_bytes: int = 0


def collect_garbage(
    store: ContentStore,
    grace_s: float = DEFAULT_GRACE_S,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> GcReport:
    """Remove contents no root reaches and orphan blobs, sparing anything younger than
    ``grace_s`` seconds. Raises :class:`IntegrityError` (and removes nothing) if a live
    tree cannot be read, since its files could not be told from garbage."""
    report = GcReport(dry_run)
    lease: AbstractContextManager[None] = nullcontext() if dry_run else store.leases.exclusive()
    with lease:
        cutoff = time.time() - grace_s
        live, young = _mark(store, cutoff, report)
        garbage = _garbage(store, live, young, cutoff, report)
        orphans = list(orphan_blobs(store, cutoff))
        files = store.files
        temps = files.stale_temp_files(cutoff) if files is not None else []
        packs = _packs_touched(store, {digest for digest, _kind, _size in garbage})
        # more dead than live: rewrite (or, with nothing live, just delete) the pack
        rewrite = {key: use for key, use in packs.items() if use.live_bytes < use.dead_bytes}
        if not dry_run:
            _sweep(store, garbage, progress)
            # a pack whose live members do not all verify stays as it is, for fsck
            rewrite = {key: use for key, use in rewrite.items() if _repack(store, key, use)}
            for key, _size in orphans:
                store.backend.delete(key)
            if files is not None:
                for name, _size in temps:
                    files.remove_temp_file(name)
        report.swept = [digest for digest, _kind, _size in garbage]
        report.swept_bytes = sum(size for _digest, _kind, size in garbage)
        report.orphans = [key for key, _size in orphans]
        report.orphan_bytes = sum(size for _key, size in orphans)
        report.temp_files = [name for name, _size in temps]
        report.temp_bytes = sum(size for _name, size in temps)
        report.repacked = sorted(rewrite)
        report.retained_bytes = sum(u.dead_bytes for k, u in packs.items() if k not in rewrite)
    return report


def _mark(store: ContentStore, cutoff: float, report: GcReport) -> tuple[set[str], set[str]]:
    """(what the roots reach, what only the young contents reach)."""
    roots: set[str] = set()
    with store.db.read("reading gc roots") as conn:
        for provider in root_providers():
            found = set(provider.live_digests(conn))
            report.roots[provider.name] = len(found)
            roots |= found
        young_query = select(contents.c.digest).where(contents.c.created_at >= cutoff)
        young = set(conn.execute(young_query).scalars())
        tree_query = select(contents.c.digest).where(contents.c.kind == "tree")
        trees = set(conn.execute(tree_query).scalars())
    live = _reach(store, roots, trees, set())
    return live, _reach(store, young - live, trees, live)


def _reach(store: ContentStore, start: set[str], trees: set[str], known: set[str]) -> set[str]:
    """``start`` and everything its trees name, leaving out what is ``known`` already."""
    reached = set(start)
    pending = sorted(reached & trees)
    while pending:
        tree = pending.pop()
        try:
            members = tree_members(store.get(tree), store.algorithm)
        except (DatakeepError, OSError) as exc:
            raise IntegrityError(
                f"gc stopped, nothing removed: the live tree {tree} cannot be read ({exc}); "
                "run 'datakeep fsck'"
            ) from exc
        for digest in members:
            if digest not in reached and digest not in known:
                reached.add(digest)
                if digest in trees:
                    pending.append(digest)
    return reached


def _garbage(
    store: ContentStore, live: set[str], young: set[str], cutoff: float, report: GcReport
) -> list[tuple[str, str, int]]:
    """(digest, kind, size) of recorded contents nothing keeps: trees first."""
    garbage: list[tuple[str, str, int]] = []
    query = select(contents.c.digest, contents.c.kind, contents.c.size, contents.c.created_at)
    with store.db.read("finding garbage") as conn:
        rows = conn.execution_options(yield_per=10_000).execute(query)
        for digest, kind, size, created_at in rows:
            if digest in live:
                report.live += 1
            elif digest in young or created_at >= cutoff:  # (a dry run races new puts)
                report.young += 1
            else:
                garbage.append((digest, kind, size))
    # a tree goes before the blobs it names: no moment where a kept tree names a gap
    garbage.sort(key=lambda g: (g[1] != "tree", g[0]))
    return garbage


def _sweep(
    store: ContentStore, garbage: list[tuple[str, str, int]], progress: ProgressCallback | None
) -> None:
    for i in range(0, len(garbage), _BATCH):
        batch = [digest for digest, _kind, _size in garbage[i : i + _BATCH]]

        def delete_rows(conn: Connection, batch: list[str] = batch) -> list[str]:
            pointers = conn.execute(
                select(placements.c.pointer).where(
                    placements.c.digest.in_(batch), placements.c.location == PRIMARY
                )
            ).scalars()
            keys = [key_of_pointer(p) for p in pointers]
            # placements, tags and pins go with their content (ON DELETE CASCADE)
            conn.execute(contents.delete().where(contents.c.digest.in_(batch)))
            return keys

        # rows first: a crash here leaves orphan blobs, never rows without blobs
        for key in store.db.transact("sweeping garbage", delete_rows):
            if stored_as_file(key):  # inline bytes went with their row, packs go apart
                store.backend.delete(key)
        if progress is not None:
            progress(Progress("gc", min(i + _BATCH, len(garbage)), len(garbage), 0))


def _packs_touched(store: ContentStore, garbage: Collection[str]) -> dict[str, _PackUse]:
    """The packs holding some of ``garbage``, with what is live in them and what is not."""
    packs: dict[str, _PackUse] = {}
    wanted = sorted(garbage)
    with store.db.read("finding packed garbage") as conn:
        for i in range(0, len(wanted), _BATCH):
            rows = conn.execute(
                select(placements.c.pointer).where(
                    placements.c.digest.in_(wanted[i : i + _BATCH]),
                    placements.c.location == PRIMARY,
                )
            )
            for member in filter(None, (pack_member(key_of_pointer(p)) for (p,) in rows)):
                packs.setdefault(member.pack, _PackUse()).dead_bytes += member.length
        if not packs:
            return packs
        everything = select(placements.c.digest, placements.c.pointer).where(
            placements.c.location == PRIMARY
        )
        for digest, pointer in conn.execution_options(yield_per=10_000).execute(everything):
            if '"pack"' not in pointer or digest in garbage:  # cheap tests first
                continue
            key = key_of_pointer(pointer)
            found = pack_member(key)
            use = packs.get(found.pack) if found is not None else None
            if found is not None and use is not None:
                use.live.append(Stored(digest, found.length, "blob", key))
                use.live_bytes += found.length
    return packs


def _repack(store: ContentStore, pack: str, use: _PackUse) -> bool:
    """Move the live members of ``pack`` to a new pack, then delete it; False (and
    nothing changed) if a live member is unreadable or fails its check."""
    if use.live:
        blobs = {}
        for item, data in store.read_many(use.live):
            if isinstance(data, DatakeepError):
                return False
            blobs[item.digest] = data
        written = store.write_pack(blobs)
        store.sync_blobs()  # the new pack is on disk before any row points to it
        move = (
            update(placements)
            .where(placements.c.digest == bindparam("d"), placements.c.location == PRIMARY)
            .values(pointer=bindparam("p"))
        )
        rows = [{"d": w.digest, "p": pointer_of(w.key)} for w in written]
        store.db.transact("moving packed contents", lambda conn: conn.execute(move, rows))
    store.backend.delete(pack)  # a crash before this leaves it an orphan, for the next gc
    return True


def orphan_blobs(store: ContentStore, cutoff: float | None = None) -> Iterator[tuple[str, int]]:
    """(key, size) of blobs that no index row names, stored before ``cutoff`` if given.
    Quarantined blobs are not orphans."""
    unnamed = {key for key in store.blob_keys() if not key.startswith(QUARANTINE)}
    query = select(placements.c.pointer).where(placements.c.location == PRIMARY)
    with store.db.read("listing blob keys") as conn:
        for pointer in conn.execution_options(yield_per=10_000).execute(query).scalars():
            unnamed.discard(object_key(key_of_pointer(pointer)))  # a member names its pack
    for key in sorted(unnamed):
        try:
            info = store.backend.head(key)
        except NotFound:
            continue  # removed meanwhile
        if cutoff is None or info.modified < cutoff:
            yield key, info.size
