"""fsck: check the index against the blobs both ways, re-hashing every blob.

Index to blobs: every recorded content must have its blob, of the right size and digest,
and a tree must parse and name only contents the index holds. Blobs to index: a blob no
row names is an *orphan*; crashes leave these by design (blob first, row second) and gc
removes them, so they are reported but are not problems.

``repair_index`` makes the index say what is really there, and never deletes bytes:

* a content whose blob is missing loses its placement (and its row, with no placement
  left), so reads say :class:`~datakeep.errors.NotFound` and a re-put stores it again;
* a corrupted blob is moved under ``quarantine/`` (kept for inspection, never swept),
  then treated as missing; a corrupted member of a pack is copied there, and its pack
  stays for the other members;
* an orphan whose bytes hash to the digest its key names is recorded, and so is every
  member of a pack (named by the pack's own table) that the index lacks and that verifies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, delete, exists, select

from ..content import (
    PRIMARY,
    ContentStore,
    Problem,
    Stored,
    Written,
    check_bytes,
    digest_named_by,
)
from ..content.packs import is_pack_key, member_key, read_table
from ..errors import DatakeepError, IntegrityError
from ..index import contents, placements
from ..progress import Progress, ProgressCallback
from ..trees.format import decode_tree
from .gc import orphan_blobs

__all__ = ["Dangling", "FsckReport", "fsck"]


@dataclass(frozen=True, slots=True)
class Dangling:
    """A tree entry naming a content the index does not hold."""

    tree: str
    path: str
    digest: str


@dataclass(slots=True)
class FsckReport:
    """What fsck checked and found (and, with ``repair_index``, what it changed)."""

    checked: int = 0
    """Contents re-hashed."""
    nbytes: int = 0
    """Bytes re-hashed."""
    missing: list[str] = field(default_factory=list)
    """Recorded contents whose blob is gone."""
    corrupted: list[Problem] = field(default_factory=list)
    """Recorded contents whose blob is truncated, altered or unreadable."""
    dangling: list[Dangling] = field(default_factory=list)
    """Tree entries naming contents the index does not hold."""
    orphans: list[tuple[str, int]] = field(default_factory=list)
    """(key, size) of blobs no index row names: gc candidates, not problems."""
    repairs: list[str] = field(default_factory=list)
    """One line per change ``repair_index`` made."""
    forgotten: list[str] = field(default_factory=list)
    """Digests ``repair_index`` dropped from the index (a re-put stores them again)."""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupted or self.dangling)


def fsck(
    store: ContentStore,
    repair_index: bool = False,
    progress: ProgressCallback | None = None,
) -> FsckReport:
    """Check (and optionally repair) the index against the blobs; see the module doc."""
    report = FsckReport()
    trees: list[str] = []
    bad: list[Stored] = []
    for item in store.stored():
        try:
            store.check(item)
        except FileNotFoundError:
            report.missing.append(item.digest)
            bad.append(item)
        except IntegrityError as exc:
            report.corrupted.append(Problem(item.digest, str(exc)))
            bad.append(item)
        except (DatakeepError, OSError) as exc:
            # unreadable (permissions, I/O error): report, but do not touch
            report.corrupted.append(Problem(item.digest, f"unreadable: {exc}"))
        else:
            if item.kind == "tree":
                trees.append(item.digest)
        report.checked += 1
        report.nbytes += item.size
        if progress is not None:
            progress(Progress("fsck", report.checked, None, item.size))
    if repair_index:
        with store.leases.exclusive():
            _forget(store, bad, report)
            report.orphans = list(orphan_blobs(store))
            _adopt(store, report)
            if _adopt_pack_members(store, report):
                report.orphans = list(orphan_blobs(store))  # an adopted pack is named now
    else:
        report.orphans = list(orphan_blobs(store))
    _check_trees(store, trees, report)
    return report


def _forget(store: ContentStore, bad: Iterable[Stored], report: FsckReport) -> None:
    """Drop the primary placement of missing or corrupted blobs (quarantining the
    corrupted bytes), and the content row when no placement is left."""
    for item in bad:
        aside = store.set_aside(item)
        if aside is not None:  # missing: nothing to set aside
            report.repairs.append(f"quarantined {item.digest} as {aside}")

        def drop(conn: Connection, digest: str = item.digest) -> None:
            conn.execute(
                delete(placements).where(
                    placements.c.digest == digest, placements.c.location == PRIMARY
                )
            )
            held = select(placements.c.digest).where(placements.c.digest == digest)
            conn.execute(delete(contents).where(contents.c.digest == digest, ~exists(held)))

        store.db.transact("repairing the index", drop)
        report.forgotten.append(item.digest)
        report.repairs.append(f"forgot {item.digest}: its blob is not in the store")


def _adopt(store: ContentStore, report: FsckReport) -> None:
    """Record orphans whose bytes are the content their key names."""
    left: list[tuple[str, int]] = []
    for key, size in report.orphans:
        digest = digest_named_by(key)
        if digest is None or not digest.startswith(store.algorithm + ":"):
            left.append((key, size))
            continue
        try:
            store.check(Stored(digest, size, "blob", key))
        except (DatakeepError, OSError):
            left.append((key, size))
            continue
        store.record([Written(digest, size, key)])
        report.repairs.append(f"recorded {digest} from the orphan blob {key}")
    report.orphans = left


def _adopt_pack_members(store: ContentStore, report: FsckReport) -> bool:
    """Record the members of every pack that the index lacks, if their bytes verify; a
    pack whose table cannot be read is left as it is (and, unnamed, stays an orphan).
    True if any was recorded."""
    adopted: set[str] = set()
    for pack in [k for k in store.blob_keys("packs/") if is_pack_key(k)]:
        try:
            data = store.backend.read(pack)
            entries = read_table(len(data), data)
        except (DatakeepError, OSError):
            continue
        lacking = store.missing(e.digest for e in entries) - adopted
        found = []
        for e in entries:
            if e.digest not in lacking or not e.digest.startswith(store.algorithm + ":"):
                continue
            try:
                check_bytes(data[e.offset : e.offset + e.length], e.digest, e.length)
            except IntegrityError:
                continue
            found.append(Written(e.digest, e.length, member_key(pack, e.offset, e.length)))
            adopted.add(e.digest)
        if found:
            store.record(found)
            report.repairs.extend(f"recorded {w.digest} from the pack {pack}" for w in found)
    return bool(adopted)


def _check_trees(store: ContentStore, trees: list[str], report: FsckReport) -> None:
    """Each tree must parse and name only contents the index holds."""
    for tree in trees:
        try:
            entries = decode_tree(store.get(tree), store.algorithm)
        except (DatakeepError, OSError) as exc:
            report.corrupted.append(Problem(tree, f"not a valid tree: {exc}"))
            continue
        named = {e.path: e.digest for e in entries if e.digest is not None}
        absent = store.missing(named.values())
        report.dangling.extend(
            Dangling(tree, path, digest) for path, digest in named.items() if digest in absent
        )
