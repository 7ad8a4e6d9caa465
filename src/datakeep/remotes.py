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
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, exists, select
from sqlalchemy.orm import aliased

from .backends import Backend, LocalBackend, open_backend
from .content import (
    CHUNK,
    INLINE_KEY,
    PRIMARY,
    ContentStore,
    Problem,
    VerifiedReader,
    Written,
    drain_verified,
    key_of_pointer,
    pointer_of,
)
from .digest import parse_digest
from .errors import AlreadyExists, IntegrityError, InvalidInput, NotFound, StorageError
from .index import contents, placements, remotes
from .index.upsert import insert_ignore
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


def _remote_config(location: str, endpoint: str | None) -> tuple[str, dict[str, Any]]:
    if location.startswith("s3://"):
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        if not bucket:
            raise InvalidInput(f"no bucket in {location!r}; use s3://bucket/prefix")
        config = {"bucket": bucket, "prefix": prefix.strip("/"), "endpoint": endpoint}
        return "datakeep.s3@v1", {**config, "region": None}
    if "://" in location:
        raise InvalidInput(f"a remote is a directory or s3://bucket/prefix, not {location!r}")
    if endpoint is not None:
        raise InvalidInput("--endpoint goes with s3:// remotes")
    from pathlib import Path

    return LocalBackend.name, {"root": str(Path(location).resolve())}


def add_remote(
    store: ContentStore, name: str, location: str, endpoint: str | None = None
) -> Remote:
    """Register a remote; the directory or bucket must be reachable."""
    if not _NAME.match(name) or name == PRIMARY:
        raise InvalidInput(f"invalid remote name {name!r}: letters, digits, '_', '.', '-'")
    backend_name, config = _remote_config(location, endpoint)
    remote = Remote(name, backend_name, config)
    list(remote.open().list("never/"))  # reachable? (a clear StorageError if not)
    row = {
        "name": name,
        "backend": backend_name,
        "config": json.dumps(config),
        "created_at": time.time(),
    }

    def run(conn: Any) -> list[str]:
        added = insert_ignore(conn, remotes, ["name"]).returning(remotes.c.name)
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

    def send(row: Any) -> tuple[str, int, str, bool]:
        digest, size, _kind, pointer = row
        key = key_of_pointer(pointer)
        if key == INLINE_KEY:  # kept in the index here; a file on the remote
            key = store.router(digest, {})
        if size <= 8 << 20:
            written = target.create(key, store.get(digest))
        else:
            with store.open(digest) as reader, target.stage() as staged:
                while chunk := reader.read(1 << 20):
                    staged.write(chunk)
                written = staged.commit(key)
        return digest, size, key, written

    recorded: list[dict[str, Any]] = []
    # whatever reached the remote is recorded, even if a later blob fails
    with ThreadPoolExecutor(_WORKERS) as pool, _finally(_record_placements, store, recorded):
        for digest, size, key, written in pool.map(send, todo):
            recorded.append(
                {
                    "digest": digest,
                    "location": name,
                    "backend": target.name,
                    "pointer": pointer_of(key),
                }
            )
            if written:
                report.transferred += 1
                report.nbytes += size
            else:
                report.already += 1
            if progress is not None:
                progress(Progress("push", report.transferred + report.already, len(todo), size))
            if len(recorded) >= _BATCH:
                _record_placements(store, recorded)
    return report


def _record_placements(store: ContentStore, rows: list[dict[str, Any]]) -> None:
    """The inventory: written only after the remote holds the blobs (then cleared)."""
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
        roots = _fetch(store, source, wanted, report, progress)
        trees = [d for d in roots if _is_tree(store, d)]
        members = sorted({m for t in trees for m in tree_members(store.get(t), store.algorithm)})
        _fetch(store, source, members, report, progress)
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


@contextmanager
def _finally(
    flush: Callable[[ContentStore, Any], None], store: ContentStore, rows: Any
) -> Iterator[None]:
    try:
        yield
    finally:
        flush(store, rows)


def _is_tree(store: ContentStore, digest: str) -> bool:
    with store.open(digest) as reader:
        if reader.read(len(TREE_FORMAT) + 1) != f"{TREE_FORMAT}\n".encode():
            return False
    try:
        tree_members(store.get(digest), store.algorithm)
    except IntegrityError:
        return False
    return True


def _fetch(
    store: ContentStore,
    source: Backend,
    digests: Sequence[str],
    report: TransferReport,
    progress: ProgressCallback | None,
) -> list[str]:
    """Copy ``digests`` the primary lacks from ``source``, verified; returns all of them."""
    held = set(digests) - store.missing(digests)
    lacking = [d for d in sorted(set(digests)) if d not in held]

    def fetch(digest: str) -> Written:
        key = store.router(digest, {})
        with source.open(key) as raw:
            written = store.write_stream(raw)
        if written.digest != digest:
            raise IntegrityError(
                f"remote object {key} is not {digest}: its bytes hash to {written.digest}; "
                "nothing was recorded"
            )
        return written

    batch: list[Written] = []
    # whatever arrived verified is recorded, even if a later blob fails
    with ThreadPoolExecutor(_WORKERS) as pool, _finally(_record_blobs, store, batch):
        for written in pool.map(fetch, lacking):
            batch.append(written)
            report.transferred += 1
            report.nbytes += written.size
            if progress is not None:
                progress(Progress("pull", report.transferred, len(lacking), written.size))
            if len(batch) >= _BATCH:
                _record_blobs(store, batch)
    report.already += len(held)
    return sorted(set(digests))


# -- mirrors: reads that fall back when the primary fails --------------------------------
def mirrors_of(store: ContentStore, digest: str) -> list[tuple[Remote, str]]:
    """(remote, key) of every remote the inventory says holds ``digest``."""
    query = select(placements.c.location, placements.c.pointer).where(
        placements.c.digest == digest, placements.c.location != PRIMARY
    )
    with store.db.read("finding mirrors") as conn:
        held = {location: pointer for location, pointer in conn.execute(query)}
    return [(r, key_of_pointer(held[r.name])) for r in list_remotes(store) if r.name in held]


def open_from_mirror(store: ContentStore, digest: str) -> tuple[str, io.BufferedReader]:
    """A verified reader of ``digest`` from the first mirror that has it: (its name, reader)."""
    size = _recorded_size(store, digest)
    failures = []
    for remote, key in mirrors_of(store, digest):
        try:
            raw = remote.open().open(key)
        except (NotFound, StorageError) as exc:
            failures.append(f"{remote.name}: {exc}")
            continue
        return remote.name, io.BufferedReader(VerifiedReader(raw, digest, size), CHUNK)
    raise NotFound(_none_good(digest, failures))


def read_from_mirror(store: ContentStore, digest: str) -> tuple[str, bytes]:
    """The verified bytes of ``digest`` from the first mirror whose copy is good."""
    size = _recorded_size(store, digest)
    failures = []
    for remote, key in mirrors_of(store, digest):
        data = bytearray()
        try:
            with remote.open().open(key) as raw:
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
    for done, (digest, size, pointer) in enumerate(rows, start=1):
        key = key_of_pointer(pointer)
        try:
            if rehash:
                with backend.open(key) as raw:
                    drain_verified(raw, digest, size)
            elif (found := backend.head(key).size) != size:
                raise IntegrityError(f"{digest} has {found} bytes on {name}, not {size}")
        except NotFound:
            problems.append(Problem(digest, f"missing from remote {name} ({key})"))
        except (IntegrityError, StorageError) as exc:
            problems.append(Problem(digest, f"on remote {name}: {exc}"))
        if progress is not None:
            progress(Progress("verify", done, len(rows), size))
    return len(rows), sum(size for _, size, _ in rows), problems
