"""Remotes: other directories or buckets that hold copies, and push/pull between them.

The index records which remote holds which blob: a ``placements`` row whose location is
the remote's name, written only after the remote has the blob. Those rows are the
inventory, so a push sends what they lack without listing the remote, and a no-op push
is one query. Transfers are verified (read from the primary verified; pulled bytes are
re-hashed before they are recorded), run in parallel, and resume after an interruption:
a blob already on the remote is never sent twice and never overwritten.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO

from sqlalchemy import and_, delete, exists, select
from sqlalchemy.orm import aliased

from .backends import Backend, FileBackend, LocalBackend, backend_for_location, open_backend
from .content import (
    CHUNK,
    PACKED_MAX,
    PRIMARY,
    ContentStore,
    Problem,
    Stored,
    VerifiedReader,
    Written,
    drain_verified,
    key_of_pointer,
    pointer_of,
    verify_file,
)
from .digest import parse_digest
from .errors import (
    AlreadyExists,
    DatakeepError,
    IntegrityError,
    InvalidInput,
    NotFound,
    StorageError,
)
from .index import contents, placements, remotes
from .index.upsert import insert_ignore
from .packs import (
    PACK_LIMIT,
    PACKABLE,
    TRAILER_SIZE,
    build_pack,
    pack_pointer,
    read_table,
    table_length,
)
from .progress import Progress, ProgressCallback
from .trees import TREE_FORMAT, tree_members

__all__ = [
    "Remote",
    "TransferReport",
    "add_remote",
    "get_remote",
    "list_remotes",
    "mirrors_of",
    "open_from_mirror",
    "pull",
    "push",
    "read_from_mirror",
    "remove_remote",
    "verify_remote",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_BATCH = 500
_WORKERS = 8


@dataclass(frozen=True, slots=True)
class Remote:
    """A named place that holds copies."""

    name: str
    backend: str
    """Its permanent backend name, e.g. ``datakeep.s3@v1``."""
    config: dict[str, Any]
    """Settings that re-create the backend (never credentials)."""

    @property
    def location(self) -> str:
        if self.backend == LocalBackend.name:
            return str(self.config["root"])
        return f"s3://{self.config['bucket']}/{self.config.get('prefix', '')}".rstrip("/")

    def open(self) -> Backend:
        return open_backend(self.backend, dict(self.config))


@dataclass(slots=True)
class TransferReport:
    """What a push or pull moved."""

    transferred: int = 0
    """Blobs copied."""
    nbytes: int = 0
    """Bytes copied."""
    already: int = 0
    """Blobs the other side held already (recorded, not copied)."""


def add_remote(
    store: ContentStore, name: str, location: str, endpoint: str | None = None
) -> Remote:
    """Register a remote; the directory or bucket must be reachable."""
    if not _NAME.match(name) or name == PRIMARY:
        raise InvalidInput(f"invalid remote name {name!r}: letters, digits, '_', '.', '-'")
    backend_name, config = backend_for_location(location, endpoint)
    remote = Remote(name, backend_name, config)
    list(remote.open().list("never/"))  # reachable? (a clear StorageError if not)
    row = {
        "name": name,
        "backend": backend_name,
        "config": json.dumps(config),
        "created_at": time.time(),
    }

    def run(conn: Any) -> list[str]:
        added = insert_ignore(conn, remotes, ["name"], returning=["name"])
        return list(conn.execute(added, [row]).scalars())

    if not store.db.transact("adding a remote", run):
        raise AlreadyExists(f"a remote named {name!r} exists already")
    return remote


def list_remotes(store: ContentStore) -> list[Remote]:
    with store.db.read("listing remotes") as conn:
        rows = conn.execute(select(remotes).order_by(remotes.c.name)).all()
    return [Remote(r.name, r.backend, json.loads(r.config)) for r in rows]


def get_remote(store: ContentStore, name: str) -> Remote:
    for remote in list_remotes(store):
        if remote.name == name:
            return remote
    known = ", ".join(r.name for r in list_remotes(store)) or "none"
    raise NotFound(f"no remote named {name!r} (known: {known})")


def remove_remote(store: ContentStore, name: str) -> None:
    """Forget a remote and its inventory; the remote's bytes are left as they are."""
    get_remote(store, name)

    def run(conn: Any) -> None:
        conn.execute(delete(placements).where(placements.c.location == name))
        conn.execute(delete(remotes).where(remotes.c.name == name))

    store.db.transact("removing a remote", run)


# -- push ---------------------------------------------------------------------------------
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
        else [digests[i : i + _BATCH] for i in range(0, len(digests), _BATCH)]
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
) -> TransferReport:
    """Copy to remote ``name`` what it lacks: everything, or ``digests`` (trees with their
    files). Only blobs the index does not already place there are sent."""
    remote = get_remote(store, name)
    target = remote.open()
    chosen = None if digests is None else _with_members(store, digests)
    report = TransferReport()
    todo = list(_unsent(store, name, chosen))

    large = threading.Semaphore(2)  # a staged large blob may be buffered whole

    def send(unit: list[Any]) -> list[tuple[str, int, str, bool]]:
        """Store one large blob as its own object, or a pack of small ones."""
        if len(unit) == 1 and unit[0][1] > PACKABLE:
            digest, size, _kind, pointer = unit[0]
            key = key_of_pointer(pointer)
            if store.files is not None and isinstance(target, FileBackend):
                # file to file: verify the source, then copy in the kernel
                source = store.files.path_of(key)
                verify_file(source, digest, size)
                return [(digest, size, pointer_of(key), target.ingest(key, source, "copy"))]
            with large, store.open(digest) as reader, target.stage() as staged:
                while chunk := reader.read(1 << 20):
                    staged.write(chunk)
                written = staged.commit(key)
            return [(digest, size, pointer_of(key), written)]
        # read by their keys, verified, each pack of the keep once
        stored = [Stored(d, size, kind, key_of_pointer(pointer)) for d, size, kind, pointer in unit]
        key, data, entries = build_pack(_verified(store.read_many(stored)))
        written = target.create(key, data)  # content-addressed: the same pack if it exists
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
        with ThreadPoolExecutor(_WORKERS) as pool:
            for sent in pool.map(send, _units(todo)):
                account(sent)
                if len(recorded) >= _BATCH:
                    flush(store, recorded)
    finally:
        flush(store, recorded)
    return report


def _verified(read: Iterator[tuple[Stored, bytes | DatakeepError]]) -> Iterator[tuple[str, bytes]]:
    """(digest, bytes) of what :meth:`ContentStore.read_many` gave; its first error raised."""
    for item, data in read:
        if isinstance(data, DatakeepError):
            raise data
        yield item.digest, data


def _units(rows: list[Any]) -> Iterator[list[Any]]:
    """Large blobs one by one; small ones grouped into packs of up to PACK_LIMIT bytes."""
    pack: list[Any] = []
    size = 0
    for row in rows:
        if row[1] > PACKABLE:
            yield [row]
            continue
        pack.append(row)
        size += row[1]
        if size >= PACK_LIMIT:
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


# -- pull ---------------------------------------------------------------------------------
def pull(
    store: ContentStore,
    name: str,
    digests: Iterable[str] | None = None,
    progress: ProgressCallback | None = None,
) -> TransferReport:
    """Bring from remote ``name`` what the primary lacks: ``digests`` (trees with their
    files), or everything the inventory says the remote holds. Every blob is re-hashed
    on the way in and refused (:class:`IntegrityError`, nothing recorded) if it is not
    the content its name promises."""
    remote = get_remote(store, name)
    source = remote.open()
    report = TransferReport()
    if digests is None:
        with store.db.read("reading the remote inventory") as conn:
            wanted = list(
                conn.execute(
                    select(placements.c.digest).where(placements.c.location == name)
                ).scalars()
            )
    else:
        wanted = [str(parse_digest(d)) for d in digests]
    with store.leases.shared():
        roots = _fetch(store, name, source, wanted, report, progress)
        named = {d: m for d in roots if (m := _tree_members_of(store, d)) is not None}
        trees = sorted(named)
        members = sorted({m for listed in named.values() for m in listed})
        _fetch(store, name, source, members, report, progress)
        if trees:
            store.db.transact(
                "marking pulled trees",
                lambda c: c.execute(
                    contents.update().where(contents.c.digest.in_(trees)).values(kind="tree")
                ),
            )
    return report


def _record_blobs(store: ContentStore, batch: list[Written]) -> None:
    store.record(batch)
    batch.clear()


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
) -> list[str]:
    """Copy ``digests`` the primary lacks from ``source``, verified; returns all of them."""
    held = set(digests) - store.missing(digests)
    lacking = [d for d in sorted(set(digests)) if d not in held]
    unreadable: list[str] = []
    where = _locate(store, name, source, lacking, unreadable)
    singles = [[d] for d in lacking if "pack" not in where.get(d, {})]
    by_pack: dict[str, list[str]] = {}
    for d in lacking:
        if "pack" in where.get(d, {}):
            by_pack.setdefault(where[d]["pack"], []).append(d)

    def fetch(unit: list[str]) -> list[Written]:
        if len(unit) == 1 and "pack" not in where.get(unit[0], {}):
            digest = unit[0]
            key = where.get(digest, {}).get("key") or store.router(digest, {})
            try:
                raw = source.open(key)
            except NotFound:
                if unreadable:
                    raise IntegrityError(
                        f"{digest} is not on the remote as an object, and these packs are "
                        f"unreadable: {'; '.join(unreadable)}; nothing was recorded"
                    ) from None
                raise
            with raw:
                return [_checked(store.write_stream(raw), digest, key)]
        pack = where[unit[0]]["pack"]
        start = min(where[d]["offset"] for d in unit)
        end = max(where[d]["offset"] + where[d]["length"] for d in unit)
        span = source.read(pack, start, end)  # one ranged request per pack
        written: list[Written] = []
        small: dict[str, bytes] = {}
        for d in unit:
            offset = where[d]["offset"] - start
            data = span[offset : offset + where[d]["length"]]
            if len(data) <= PACKED_MAX:  # verified here, then kept in a pack of ours
                _check_named(store.hash_into(data, small), d, pack)
            else:
                written.append(_checked(store.write_bytes(data), d, pack))
        return written + (store.write_pack(small) if small else [])

    batch: list[Written] = []
    # whatever arrived verified is recorded, even if a later blob fails
    try:
        with ThreadPoolExecutor(_WORKERS) as pool:
            for written_unit in pool.map(fetch, [*singles, *by_pack.values()]):
                for written in written_unit:
                    batch.append(written)
                    report.transferred += 1
                    report.nbytes += written.size
                    if progress is not None:
                        progress(Progress("pull", report.transferred, len(lacking), written.size))
                if len(batch) >= _BATCH:
                    _record_blobs(store, batch)
    finally:
        _record_blobs(store, batch)
    report.already += len(held)
    return sorted(set(digests))


def _checked(written: Written, digest: str, where: str) -> Written:
    _check_named(written.digest, digest, where)
    return written


def _check_named(actual: str, digest: str, where: str) -> None:
    if actual != digest:
        raise IntegrityError(
            f"remote object {where} does not hold {digest}: the bytes hash to "
            f"{actual}; nothing was recorded"
        )


def _locate(
    store: ContentStore,
    name: str,
    source: Backend,
    digests: Sequence[str],
    unreadable: list[str],
) -> dict[str, dict[str, Any]]:
    """Where each digest is on the remote: from the inventory, else from the tables of the
    remote's packs (a keep that never pushed there has no inventory); a digest found in
    neither is looked for under its usual key."""
    found: dict[str, dict[str, Any]] = {}
    for i in range(0, len(digests), _BATCH):
        query = select(placements.c.digest, placements.c.pointer).where(
            placements.c.location == name, placements.c.digest.in_(digests[i : i + _BATCH])
        )
        with store.db.read("reading the remote inventory") as conn:
            found.update((d, json.loads(p)) for d, p in conn.execute(query))
    if len(found) < len(set(digests)):
        for info in source.list("packs/"):
            try:
                trailer = source.read(info.key, info.size - TRAILER_SIZE, info.size)
                tail_start = info.size - TRAILER_SIZE - table_length(trailer)
                table = read_table(info.size, source.read(info.key, tail_start, info.size))
            except IntegrityError as exc:
                unreadable.append(f"{info.key}: {exc}")  # it cannot serve; others still can
                continue
            for entry in table:
                found.setdefault(entry.digest, pack_pointer(info.key, entry))
    return found


# -- mirrors: reads that fall back when the primary fails --------------------------------
def mirrors_of(store: ContentStore, digest: str) -> list[tuple[Remote, dict[str, Any]]]:
    """(remote, pointer) of every remote the inventory says holds ``digest``."""
    query = select(placements.c.location, placements.c.pointer).where(
        placements.c.digest == digest, placements.c.location != PRIMARY
    )
    with store.db.read("finding mirrors") as conn:
        held = {location: pointer for location, pointer in conn.execute(query)}
    return [(r, json.loads(held[r.name])) for r in list_remotes(store) if r.name in held]


def _open_at(backend: Backend, pointer: Mapping[str, Any]) -> BinaryIO:
    """The raw bytes a remote pointer names: an object, or a range of a pack."""
    if "pack" in pointer:
        start = int(pointer["offset"])
        return io.BytesIO(backend.read(pointer["pack"], start, start + int(pointer["length"])))
    return backend.open(pointer["key"])


def open_from_mirror(store: ContentStore, digest: str) -> tuple[str, io.BufferedReader]:
    """A verified reader of ``digest`` from the first mirror that has it: (its name, reader)."""
    size = _recorded_size(store, digest)
    failures = []
    for remote, pointer in mirrors_of(store, digest):
        try:
            raw = _open_at(remote.open(), pointer)
        except (NotFound, StorageError) as exc:
            failures.append(f"{remote.name}: {exc}")
            continue
        return remote.name, io.BufferedReader(VerifiedReader(raw, digest, size), CHUNK)
    raise NotFound(_none_good(digest, failures))


def read_from_mirror(store: ContentStore, digest: str) -> tuple[str, bytes]:
    """The verified bytes of ``digest`` from the first mirror whose copy is good."""
    size = _recorded_size(store, digest)
    failures = []
    for remote, pointer in mirrors_of(store, digest):
        data = bytearray()
        try:
            with _open_at(remote.open(), pointer) as raw:
                drain_verified(raw, digest, size, data.extend)
        except (NotFound, StorageError, IntegrityError) as exc:
            failures.append(f"{remote.name}: {exc}")
            continue
        return remote.name, bytes(data)
    raise NotFound(_none_good(digest, failures))


def _none_good(digest: str, failures: list[str]) -> str:
    return f"no mirror holds a good copy of {digest}" + (
        f" ({'; '.join(failures)})" if failures else ""
    )


def _recorded_size(store: ContentStore, digest: str) -> int:
    return store.info(digest).size


def verify_remote(
    store: ContentStore,
    name: str,
    rehash: bool = False,
    progress: ProgressCallback | None = None,
) -> tuple[int, int, list[Problem]]:
    """Check that remote ``name`` holds what the inventory says: each blob present with
    its size, and with ``rehash`` its bytes too. Returns (blobs, bytes, problems)."""
    remote = get_remote(store, name)
    backend = remote.open()
    query = (
        select(placements.c.digest, contents.c.size, placements.c.pointer)
        .join(contents, contents.c.digest == placements.c.digest)
        .where(placements.c.location == name)
        .order_by(placements.c.digest)
    )
    with store.db.read("reading the remote inventory") as conn:
        rows = conn.execute(query).all()
    problems: list[Problem] = []
    for done, (digest, size, text) in enumerate(rows, start=1):
        pointer = json.loads(text)
        key = pointer.get("pack") or pointer["key"]
        try:
            if rehash:
                with _open_at(backend, pointer) as raw:
                    drain_verified(raw, digest, size)
            elif "pack" in pointer:
                if backend.head(key).size < pointer["offset"] + pointer["length"]:
                    raise IntegrityError(f"pack {key} on {name} is too short for {digest}")
            elif (found := backend.head(key).size) != size:
                raise IntegrityError(f"{digest} has {found} bytes on {name}, not {size}")
        except NotFound:
            problems.append(Problem(digest, f"missing from remote {name} ({key})"))
        except (IntegrityError, StorageError) as exc:
            problems.append(Problem(digest, f"on remote {name}: {exc}"))
        if progress is not None:
            progress(Progress("verify", done, len(rows), size))
    return len(rows), sum(size for _, size, _ in rows), problems
