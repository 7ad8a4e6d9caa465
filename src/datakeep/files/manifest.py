"""The manifest of a file store: the index rows of its files, read as the original's
``Manifest`` was (hash and uuid by name, listings), and exported in its YAML layout for
tools that read that file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select

from ..errors import NotFound
from ..index import IndexDatabase
from .names import check_name, check_namespace
from .schema import entries

__all__ = ["FileEntry", "Manifest"]


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One stored file."""

    namespace: tuple[str, ...]
    """Its namespace, such as (event, production)."""
    name: str
    uuid: str
    md5: str
    sha256: str
    digest: str
    """The keep's digest of its bytes."""
    size: int
    created_at: float


def _entry(row: Row[Any]) -> FileEntry:
    return FileEntry(
        tuple(row.namespace.split("/")),
        row.name,
        row.uuid,
        row.md5,
        row.sha256,
        row.digest,
        row.size,
        row.created_at,
    )


class Manifest:
    """What a store holds, read from the index: always current, whoever added what."""

    def __init__(self, db: IndexDatabase, store: str) -> None:
        self._db = db
        self.store = store

    def entry(self, *namespace_and_name: str) -> FileEntry:
        """The file ``name`` (the last argument) of the namespace (the ones before it)."""
        *parts, name = namespace_and_name
        namespace = check_namespace(tuple(parts))
        query = select(entries).where(
            entries.c.store == self.store,
            entries.c.namespace == namespace,
            entries.c.name == check_name(name),
        )
        with self._db.read("looking up a stored file") as conn:
            row = conn.execute(query).first()
        if row is None:
            where = " ".join(parts)
            raise NotFound(f"no file {name!r} in {where} of store {self.store!r}")
        return _entry(row)

    def entry_by_uuid(self, uuid: str) -> FileEntry:
        query = select(entries).where(entries.c.store == self.store, entries.c.uuid == uuid)
        with self._db.read("looking up a stored file") as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"no file with uuid {uuid!r} in store {self.store!r}")
        return _entry(row)

    def get_hash(self, uuid: str) -> str:
        """The MD5 (hex) recorded for the file ``uuid``."""
        return self.entry_by_uuid(uuid).md5

    def get_uuid(self, *namespace_and_name: str) -> str:
        """The uuid of the file ``name`` (the last argument) of the namespace."""
        return self.entry(*namespace_and_name).uuid

    def list_resources(self, *namespace: str) -> list[FileEntry]:
        """The files of the namespace and of every namespace under it, by place."""
        query = select(entries).where(entries.c.store == self.store)
        if namespace:
            prefix = check_namespace(namespace)
            # the namespace itself, or one under it: never a sibling that shares a prefix
            query = query.where(
                (entries.c.namespace == prefix)
                | entries.c.namespace.startswith(prefix + "/", autoescape=True)
            )
        query = query.order_by(entries.c.namespace, entries.c.name)
        with self._db.read("listing stored files") as conn:
            return [_entry(row) for row in conn.execute(query)]

    def as_dict(self) -> dict[str, Any]:
        """The original layout: ``{"name": ..., "events": {event: {production: {file:
        {"hash": md5, "uuid": ...}}}}}`` (one level per namespace part), plus each file's
        SHA-256 and digest."""
        events: dict[str, Any] = {}
        for e in self.list_resources():
            level = events
            for part in e.namespace:
                level = level.setdefault(part, {})
            level[e.name] = {"hash": e.md5, "uuid": e.uuid, "sha256": e.sha256, "digest": e.digest}
        return {"name": self.store, "events": events}

    def yaml(self) -> str:
        """:meth:`as_dict` as YAML, for tools that read the original manifest file."""
        import yaml

        return str(yaml.safe_dump(self.as_dict(), sort_keys=False, default_flow_style=False))
