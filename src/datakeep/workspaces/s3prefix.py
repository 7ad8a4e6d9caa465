"""A resource that is an S3 prefix (``s3://bucket/prefix``) instead of a local directory.

Its objects are read as the files of a tree (path: the key below the prefix, mode 0644):
a snapshot stores each object in the keep and the listing as a tree, exactly as for a
directory, so restore, diff and lineage work the same. An object is downloaded only when
it is new or its entity tag changed since it was last read; the digest each tag stood
for is kept in ``ws_s3_objects``. Restore writes back only the objects that differ, each
verified whole before its PUT replaces the object, and deletes those the snapshot lacks.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select

from ..backends import backend_for_location, open_s3_store, translated_errors
from ..digest import new_hasher
from ..errors import InvalidInput
from ..index.upsert import insert_or_update
from ..keep import Keep
from ..trees.format import TreeEntry, check_relative_path, decode_tree, encode_tree
from .schema import s3_objects
from .states import State

__all__ = ["S3Prefix", "check_location"]

_MODE = 0o644
_CHUNK = 1 << 20


def check_location(location: str, endpoint: str | None) -> str:
    """``s3://bucket/prefix`` without a trailing slash, checked."""
    backend_for_location(location, endpoint)
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    if not prefix.strip("/"):
        raise InvalidInput(f"name a prefix inside the bucket: s3://{bucket}/<prefix>")
    return location.rstrip("/")


@dataclass(frozen=True, slots=True)
class _Object:
    key: str
    size: int
    etag: str | None


class S3Prefix:
    def __init__(self, keep: Keep, location: str, endpoint: str | None) -> None:
        self.keep = keep
        self.location = check_location(location, endpoint)
        self.store = open_s3_store(self.location, endpoint)
        self._where = f"{endpoint or ''} {self.location}"

    def _objects(self) -> list[_Object]:
        import obstore

        found = []
        with translated_errors("list", self.location):
            for batch in obstore.list(self.store, None, chunk_size=1000):
                for meta in batch:
                    key = meta["path"]
                    if key.endswith("/"):
                        continue  # a folder marker some tools write: no content
                    check_relative_path(key)
                    found.append(_Object(key, meta["size"], meta.get("e_tag")))
        return sorted(found, key=lambda o: o.key)

    def _chunks(self, key: str) -> Iterator[bytes]:
        import obstore

        with translated_errors("read", f"{self.location}/{key}"):
            for chunk in obstore.get(self.store, key).stream(_CHUNK):
                yield bytes(chunk)

    def _known(self) -> dict[str, tuple[int, str, str]]:
        with self.keep.db.read("reading S3 digests") as conn:
            rows = conn.execute(
                select(
                    s3_objects.c.key, s3_objects.c.size, s3_objects.c.etag, s3_objects.c.digest
                ).where(s3_objects.c.location == self._where)
            )
            return {key: (size, etag, digest) for key, size, etag, digest in rows}

    @staticmethod
    def _cached(item: _Object, known: dict[str, tuple[int, str, str]]) -> str | None:
        have = known.get(item.key)
        if have is None or item.etag is None or have[:2] != (item.size, item.etag):
            return None
        return have[2]

    def _remember(self, learned: list[tuple[_Object, str]], gone: Collection[str] = ()) -> None:
        rows: list[dict[str, Any]] = [
            {"location": self._where, "key": o.key, "size": o.size, "etag": o.etag, "digest": d}
            for o, d in learned
            if o.etag
        ]

        def run(conn: Connection) -> None:
            if rows:
                columns = ["size", "etag", "digest"]
                conn.execute(insert_or_update(conn, s3_objects, ["location", "key"], columns), rows)
            for key in gone:
                conn.execute(
                    delete(s3_objects).where(
                        s3_objects.c.location == self._where, s3_objects.c.key == key
                    )
                )

        if rows or gone:
            self.keep.db.transact("remembering S3 digests", run)

    def state(self) -> State:
        """Every object as a file of the resource, hashed only where its tag is new."""
        known = self._known()
        state: State = {}
        learned = []
        for item in self._objects():
            digest = self._cached(item, known)
            if digest is None:
                hasher = new_hasher(self.keep.algorithm)
                for chunk in self._chunks(item.key):
                    hasher.update(chunk)
                digest = f"{self.keep.algorithm}:{hasher.hexdigest()}"
                learned.append((item, digest))
            state[item.key] = ("f", _MODE, digest)
        self._remember(learned)
        return state

    def store_tree(self) -> str:
        """Store every object (those the keep lacks) and the listing as a tree."""
        known = self._known()
        entries = []
        learned = []
        for item in self._objects():
            digest = self._cached(item, known)
            if digest is None or not self.keep.exists(digest):
                digest = self.keep.put_stream(self._chunks(item.key)).digest
                learned.append((item, digest))
            entries.append(TreeEntry(item.key, "f", _MODE, item.size, digest))
        self._remember(learned)
        tree = self.keep.store.write_bytes(encode_tree(entries))
        self.keep.store.record([tree], kind="tree")
        return tree.digest

    def restore(self, tree: str) -> None:
        """Make the prefix hold exactly the tree's files."""
        import obstore

        entries = decode_tree(self.keep.get(tree), self.keep.algorithm)
        wanted = {e.path: e.digest or "" for e in entries if e.kind == "f"}
        now = self.state()
        written = []
        for key, digest in wanted.items():
            if now.get(key) != ("f", _MODE, digest):
                # verified whole before the first byte is sent: a damaged blob never
                # replaces the object (an S3 PUT is all or nothing)
                with translated_errors("write", f"{self.location}/{key}"):
                    obstore.put(self.store, key, self.keep.stream(digest))
                written.append(key)
        extra = [key for key in now if key not in wanted]
        for key in extra:
            with translated_errors("delete", f"{self.location}/{key}"):
                obstore.delete(self.store, key)
        listed = {o.key: o for o in self._objects()}
        self._remember([(listed[k], wanted[k]) for k in written if k in listed], extra)
