"""RecordStore: experiment records as self-describing directories, kept in a keep.

A record is a row of the catalog (:mod:`.schema`) and a working directory under the
keep's ``records/<uuid>/`` (:mod:`.working`), which holds datakeep's header files
(``.datakeep-record``, ``id.json``, ``model.json``, ``updated_at``,
``related/metadata.jsonl``) beside the user's files. ``commit`` stores the directory as a
tree of the keep (each file checksummed, unchanged files not read again) and only then
points the record at it, so the catalog never names a tree that is not stored; the keep's
remotes receive it as mirrors.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid as uuids
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, delete, select, update

from ..content.rows import executor
from ..errors import InvalidInput, NotFound
from ..index import remotes as remote_rows
from ..index.upsert import insert_ignore
from ..keep import Keep
from ..maintenance.verify import VerifyReport
from ..trees.inline import read_small_tree
from . import linked
from .errors import IndexCollision
from .find import RecordPage, find_records
from .formats import MISSING, load, save, write_atomically
from .identity import canonical_json, identity_of
from .model import RecordInfo, info_of
from .paths import inside
from .reindex import reindex
from .schema import records, relations
from .working import WorkingDirectories

__all__ = ["RecordStore"]

_UUID = re.compile(r"[0-9a-f]{32}")


class RecordStore:
    """Records of a keep: ``RecordStore.open(".")`` or ``RecordStore(keep)``."""

    def __init__(self, keep: Keep, owns_keep: bool = False) -> None:
        self.keep = keep
        self.db = keep.db
        self._owns_keep = owns_keep
        self._dirs = WorkingDirectories(keep.path / "records")

    @classmethod
    def open(cls, keep_or_path: Keep | str | os.PathLike[str] = ".") -> RecordStore:
        """The records of the keep, or of the keep that holds the path (closed with the store)."""
        if isinstance(keep_or_path, Keep):
            return cls(keep_or_path)
        import datakeep

        return cls(datakeep.open(keep_or_path), owns_keep=True)

    def close(self) -> None:
        """Release the keep if this store opened it; idempotent."""
        if self._owns_keep:
            self._owns_keep = False
            self.keep.close()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- records ---------------------------------------------------------------------------
    def create(
        self,
        kind: str,
        config: Any,
        parent: str | None = None,
        predicate: str = "",
        label: str | None = None,
    ) -> str:
        """The uuid of the record of ``kind`` with ``config`` under ``parent``: made now, or
        the one that exists (from any thread, process or machine on this index). The same
        identity with another kind or config is an :class:`IndexCollision`."""
        if not isinstance(kind, str) or not kind:
            raise InvalidInput("a record needs a kind, a non-empty string")
        identity = identity_of(kind, config)
        parent_id = "" if parent is None else self.resolve(parent)
        made = RecordInfo(
            uuids.uuid4().hex,
            kind,
            identity,
            parent_id or None,
            predicate,
            json.loads(canonical_json(config)),
            label,
            time.time(),
        )
        row = {
            "uuid": made.uuid,
            "kind": kind,
            "identity": identity,
            "parent": parent_id,
            "predicate": predicate,
            "config": made.config,
            "label": label,
            "created_at": made.created_at,
            "hidden": False,
        }

        def insert(conn: Connection) -> RecordInfo | None:
            """None if ``row`` was inserted, else the record that holds its identity."""
            added = insert_ignore(
                conn, records, ["parent", "identity", "predicate"], returning=["uuid"]
            )
            if conn.execute(added, [row]).scalars().all():
                return None
            existing = conn.execute(
                select(records).where(
                    records.c.parent == parent_id,
                    records.c.identity == identity,
                    records.c.predicate == predicate,
                )
            ).one()
            if existing.kind != kind or canonical_json(existing.config) != canonical_json(config):
                raise IndexCollision(
                    f"record {existing.uuid} has identity {identity} with another kind or config"
                )
            return info_of(existing)

        existing = self.db.transact("creating a record", insert)
        if existing is not None:
            self._working(existing.uuid, existing)
            return existing.uuid
        self._dirs.make(made)  # its directory, from the row in hand: no read of it again
        return made.uuid

    def get(self, uuid: str) -> RecordInfo:
        """The catalog's row of the record ``uuid`` (or a unique prefix of it)."""
        full = self._full(uuid)
        with self.db.read("reading a record") as conn:
            row = conn.execute(select(records).where(records.c.uuid == full)).first()
        if row is None:
            raise NotFound(f"no record {uuid}")
        return info_of(row)

    def _full(self, uuid: str) -> str:
        """``uuid`` if it is a whole one (32 lowercase hex digits), else what it resolves to:
        never a string that could name a path outside ``records/``."""
        return uuid if _UUID.fullmatch(uuid) else self.resolve(uuid)

    def resolve(self, prefix: str) -> str:
        """The uuid a unique prefix (at least 4 characters) names."""
        if not isinstance(prefix, str) or len(prefix) < 4 or not prefix.isalnum():
            raise InvalidInput(f"not a record id or a prefix of 4+ characters: {prefix!r}")
        query = select(records.c.uuid).where(records.c.uuid.startswith(prefix.lower())).limit(2)
        with self.db.read("resolving a record id") as conn:
            found = conn.execute(query).scalars().all()
        if not found:
            raise NotFound(f"no record {prefix}")
        if len(found) > 1:
            raise InvalidInput(f"record id {prefix} is ambiguous: give more of it")
        return str(found[0])

    def contains(self, uuid: str) -> bool:
        try:
            self.resolve(uuid)
        except NotFound:
            return False
        return True

    def walk(self) -> Iterator[RecordInfo]:
        """Every record of the catalog, oldest first."""
        with self.db.read("listing records") as conn:
            rows = conn.execute(
                select(records).order_by(records.c.created_at, records.c.uuid)
            ).all()
        return (info_of(r) for r in rows)

    def delete(self, uuid: str) -> bool:
        """Remove the record, its relations and its working directory; gc then reclaims
        its stored tree (a record's current tree is a gc root while it is listed)."""
        try:
            info = self.get(uuid)
        except NotFound:
            return False

        def drop(conn: Connection) -> None:
            conn.execute(delete(relations).where(relations.c.uuid == info.uuid))
            conn.execute(delete(records).where(records.c.uuid == info.uuid))

        self.db.transact("deleting a record", drop)
        shutil.rmtree(self.directory(info.uuid), ignore_errors=True)
        self._dirs.forget(info.uuid)
        return True

    # -- files -----------------------------------------------------------------------------
    def directory(self, uuid: str) -> Path:
        """The record's working directory (``records/<uuid>`` in the keep)."""
        return self._dirs.base / self._full(uuid)

    def save_file(self, uuid: str, relpath: str, data: Any) -> Path:
        """Write ``data`` to ``relpath`` in the record's directory, atomically, in the format
        its extension names (``.jsonl`` appends); :class:`UnsafePath` if it would leave it."""
        target = inside(self._working(uuid), relpath)
        save(target, data)
        return target

    def load_file(self, uuid: str, relpath: str, default: Any = MISSING) -> Any:
        """What :meth:`save_file` wrote; ``default`` only when the file does not exist."""
        return load(inside(self._working(uuid), relpath), default)

    # -- durable home and mirrors ------------------------------------------------------------
    def commit(self, uuid: str, mirror: bool = True) -> str:
        """Store the record's directory as a tree and make it the record's current version;
        with ``mirror``, every remote of the keep receives it. Returns the tree's digest."""
        full = self._full(uuid)
        root = Path(self._working(full))
        now = time.time()
        write_atomically(root / "updated_at", repr(now).encode(), sync=False)  # in the tree now
        pointing = update(records).where(records.c.uuid == full)
        small = read_small_tree(self.keep.store, root)
        if small is None:
            tree = self.keep.put_tree(root).digest

        def point(conn: Connection) -> tuple[str, list[str]]:
            """Point the record at its tree (for a small directory, stored right here: its
            files, its tree and the pointer in one transaction); the remotes to mirror to."""
            stored = tree if small is None else small.record(self.keep.store, executor(conn))
            if conn.execute(pointing.values(tree=stored, updated_at=now)).rowcount != 1:
                raise NotFound(f"no record {full}")  # deleted meanwhile: nothing recorded
            return stored, list(conn.execute(select(remote_rows.c.name)).scalars())

        with self.keep.store.leases.shared():
            tree, mirrors = self.db.transact("committing a record", point)
        for name in mirrors if mirror else ():
            self.keep.push(name, [tree])
        return tree

    update = commit

    def retrieve(self, uuid: str, destination: str | os.PathLike[str]) -> Path:
        """Write the record's committed directory to ``destination`` (which must not exist),
        every file verified; a file whose home copy is missing or damaged comes from a
        mirror, verified too."""
        info = self.get(uuid)
        if info.tree is None:
            raise NotFound(f"record {info.uuid} was never committed")
        self.keep.export(info.tree, destination)
        return Path(destination)

    def fetch(self, uuid: str, force: bool = False) -> Path:
        """The working directory of the record, made from its committed version if there
        is none (or, with ``force``, replacing the one there)."""
        info = self.get(uuid)
        root = self.directory(info.uuid)
        if root.exists() and not force:
            return root
        if info.tree is None:
            self._working(info.uuid, info)
            return root
        staging = root.with_name(f".{info.uuid}.fetching")
        shutil.rmtree(staging, ignore_errors=True)
        self.keep.export(info.tree, staging)
        shutil.rmtree(root, ignore_errors=True)
        os.rename(staging, root)
        return root

    # -- run state -------------------------------------------------------------------------
    def mark(self, uuid: str, event: str) -> None:
        """Record ``started``, ``heartbeat`` or ``finished`` now (a marker file and the row)."""
        if event not in {"started", "heartbeat", "finished"}:
            raise InvalidInput(f"no run state {event!r}: started, heartbeat or finished")
        info = self.get(uuid)
        now = time.time()
        write_atomically(Path(self._working(info.uuid)) / f"{event}_at", repr(now).encode())
        self.db.transact(
            "marking a record",
            lambda c: c.execute(
                update(records).where(records.c.uuid == info.uuid).values({f"{event}_at": now})
            ),
        )

    # -- helpers ---------------------------------------------------------------------------
    def _working(self, uuid: str, info: RecordInfo | None = None) -> str:
        """The real path of the record's working directory; if it is not complete, made
        from its committed version, or with its header files only if it was never
        committed (``info``: the record's row, when the caller holds it)."""
        full = self._full(uuid)  # a checked uuid: a path inside records/
        real = self._dirs.complete(full)
        if real is not None:
            return real
        info = info or self.get(full)
        if info.tree is not None and not self.directory(full).exists():
            self.fetch(full)
            real = self._dirs.complete(full)
        return real or self._dirs.materialize(info)

    # -- the catalog -----------------------------------------------------------------------
    def find(
        self,
        kind: str | None = None,
        label: str | None = None,
        parent: str | None = None,
        config: Mapping[str, Any] | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> RecordPage:
        """Records that match, oldest first, ``limit`` at a time (``after=page.next``);
        ``config={"lr": ("lte", 0.1), "model.depth": 4}`` compares values at JSON paths."""
        parent_id = None if parent is None else self.resolve(parent)
        rows, token = find_records(self.db, kind, label, parent_id, config, limit, after)
        return RecordPage([info_of(r) for r in rows], token)

    def reindex(self) -> int:
        """Rebuild the catalog and the relations from the stored directories alone; the
        number of records found. The private overlay stays as it is."""
        return reindex(self.keep)

    def verify(self) -> VerifyReport:
        """Re-hash every file of every committed record; each missing or damaged one is a
        problem naming its path."""
        trees = [info.tree for info in self.walk() if info.tree is not None]
        return self.keep.verify_many(trees)

    # -- relations and moving records (:mod:`.linked`) -------------------------------------
    def relate(self, name: str, uuid: str, other: str) -> None:
        """Record that ``uuid`` relates to ``other`` as ``name``; idempotent. The edge is
        also kept in the record's directory, so it travels with it."""
        linked.relate(self, name, uuid, other)

    def related(self, uuid: str, name: str | None = None, inverse: bool = False) -> list[str]:
        """The uuids ``uuid`` relates to (as ``name``, or any), or with ``inverse`` those
        that relate to it."""
        return linked.related(self, uuid, name, inverse)

    def upload(self, uuid: str, related: bool | int = True) -> list[str]:
        """Commit the record and, with ``related``, the records related to it either way
        (``2``: transitively); the uuids committed."""
        return linked.upload(self, uuid, related)

    def download(
        self, uuid: str, destination: str | os.PathLike[str], related: bool | int = True
    ) -> list[Path]:
        """Retrieve the record (and, with ``related``, its related records; ``2``:
        transitively) as ``destination/<uuid>`` directories, verified."""
        return linked.download(self, uuid, Path(destination), related)

    def ingest_directory(self, directory: str | os.PathLike[str]) -> str:
        """Import a record directory made elsewhere (retrieved, downloaded, copied): its
        row, its relations and its files, merged into the working directory (nothing there
        is deleted), then committed. Idempotent, in any order of parents and children."""
        return linked.ingest_directory(self, Path(directory))

    def set_private(
        self, uuid: str, hidden: bool | None = None, private: Mapping[str, Any] | None = None
    ) -> None:
        """This keep's own overlay of a record: ``hidden`` from :meth:`find`, and
        ``private`` JSON; never stored in the directory, kept by :meth:`reindex`."""
        values: dict[str, Any] = {}
        if hidden is not None:
            values["hidden"] = hidden
        if private is not None:
            values["private"] = json.loads(canonical_json(private))
        full = self.get(uuid).uuid
        self.db.transact(
            "setting a record's overlay",
            lambda c: c.execute(update(records).where(records.c.uuid == full).values(values)),
        )

    def private(self, uuid: str) -> dict[str, Any]:
        """The overlay of a record: ``{"hidden": bool, "private": JSON or None}``."""
        full = self.get(uuid).uuid
        with self.db.read("reading a record's overlay") as conn:
            row = conn.execute(
                select(records.c.hidden, records.c.private).where(records.c.uuid == full)
            ).one()
        return {"hidden": bool(row.hidden), "private": row.private}
