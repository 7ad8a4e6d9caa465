"""What the index knows of contents: lookups by digest (or by an alias: another digest of
the same bytes, checked when it was put), keyset-paged finds by tag and kind, the listing
of stored blobs with their keys, and tags."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, and_, exists, func, select

from ..digest import parse_digest
from ..errors import IntegrityError, InvalidInput, NotFound
from ..index import IndexDatabase, Leases, aliases, contents, placements
from ..index import tags as tag_table
from ..index.batched import rows_for
from ..index.upsert import insert_or_update
from .model import PRIMARY, Content, Page, Stored, check_tags, with_tags
from .names import CANDIDATES, one_candidate, prefix_of
from .pointers import key_of_pointer

__all__ = ["Catalog"]

_KEYS = (
    f"SELECT digest, pointer FROM {placements.name}"
    f" WHERE location = '{PRIMARY}' AND digest IN ({{values}})"
)
_KNOWN = f"SELECT digest FROM {contents.name} WHERE digest IN ({{values}})"


class Catalog:
    """Lookups and tags; part of :class:`~datakeep.content.ContentStore`."""

    db: IndexDatabase
    leases: Leases
    algorithm: str

    def canonical(self, digest: str) -> str:
        """The content's own digest for ``digest``: itself if it is in the keep's algorithm
        (no query) or no alias is recorded (lookups then find nothing), else the content
        the alias names. :class:`IntegrityError` if an alias names more than one content
        (a hash collision, possible with MD5): it cannot say which one was meant."""
        parsed = parse_digest(digest)
        if parsed.algorithm == self.algorithm:
            return digest
        name = str(parsed)
        query = select(aliases.c.digest).where(aliases.c.alias == name).limit(2)
        with self.db.read("looking up an alias") as conn:
            found = list(conn.execute(query).scalars())
        if len(found) > 1:
            named = " and ".join(found)
            raise IntegrityError(
                f"{name} names more than one content ({named}): a {parsed.algorithm} "
                "collision; ask for the content by its own digest"
            )
        return found[0] if found else name

    def resolve(self, name: str) -> str:
        """The digest a person typed: a full digest (or alias) as it is, or a unique
        prefix of at least :data:`~.names.MIN_PREFIX` hex digits, with or without the algorithm.
        An ambiguous prefix is :class:`InvalidInput` listing the candidates."""
        digest, is_prefix = prefix_of(name, self.algorithm)
        if not is_prefix:
            return digest
        query = (
            select(contents.c.digest)
            .where(contents.c.digest >= digest, contents.c.digest < digest + "g")
            .order_by(contents.c.digest)
            .limit(CANDIDATES)
        )
        with self.db.read("resolving a digest prefix") as conn:
            return one_candidate(name, digest, list(conn.execute(query).scalars()))

    def aliases_of(self, digest: str) -> list[str]:
        """The other digests recorded for a content (checked when it was put), sorted."""
        query = select(aliases.c.alias).where(aliases.c.digest == self.canonical(digest))
        with self.db.read("listing aliases") as conn:
            return sorted(conn.execute(query).scalars())

    def key_of(self, digest: str) -> str:
        """The backend key of a stored digest; :class:`NotFound` if not recorded."""
        return self._locate(digest)[2]

    def _locate(self, digest: str) -> tuple[str, int, str]:
        """(the content's own digest, size, backend key) of a stored digest or alias, in
        one query for a digest; :class:`NotFound` if absent."""
        digest = self.canonical(digest)
        with self.db.read("looking up a blob") as conn:
            row = conn.execute(
                select(contents.c.size, placements.c.pointer)
                .join(placements, placements.c.digest == contents.c.digest)
                .where(contents.c.digest == digest, placements.c.location == PRIMARY)
            ).first()
        if row is None:
            raise NotFound(f"no content {digest} in this keep")
        return digest, int(row[0]), key_of_pointer(row[1])

    def keys_of(self, digests: Iterable[str], missing_ok: bool = False) -> dict[str, str]:
        """Backend keys of many digests at once; :class:`NotFound` names one that is absent
        (or, with ``missing_ok``, absent ones are left out)."""
        wanted = sorted(set(digests))
        with self.db.read("looking up blobs") as conn:
            keys = {d: key_of_pointer(p) for d, p in rows_for(conn, _KEYS, wanted)}
        for digest in [] if missing_ok else wanted:
            if digest not in keys:
                raise NotFound(f"no content {digest} in this keep")
        return keys

    def exists(self, digest: str) -> bool:
        """True if a content has this digest, or this alias (even shared by two)."""
        parsed = parse_digest(digest)
        found = exists().where(contents.c.digest == digest)
        if parsed.algorithm != self.algorithm:  # an alias row names an existing content
            found = exists().where(aliases.c.alias == str(parsed))
        with self.db.read("looking up content") as conn:
            return conn.execute(select(found)).scalar_one()

    def missing(self, digests: Iterable[str]) -> set[str]:
        """Those of ``digests`` that the index does not hold."""
        wanted = set(digests)
        with self.db.read("looking up content") as conn:
            found = {row[0] for row in rows_for(conn, _KNOWN, sorted(wanted))}
        return wanted - found

    def info(self, digest: str) -> Content:
        """What the index holds of a digest or alias (under the content's own digest)."""
        digest = self.canonical(digest)
        items = self._load([digest])
        if not items:
            raise NotFound(f"no content {digest} in this keep")
        return items[0]

    def _load(self, digests: Sequence[str]) -> list[Content]:
        """Contents with their tags, in one query (a plain ``=`` for one digest, which
        SQLAlchemy caches whole: a put returns through here)."""
        if not digests:
            return []
        matches = (
            contents.c.digest == digests[0] if len(digests) == 1 else contents.c.digest.in_(digests)
        )
        query = (
            select(contents, tag_table.c.key, tag_table.c.value)
            .outerjoin(tag_table, tag_table.c.digest == contents.c.digest)
            .where(matches)
        )
        with self.db.read("reading content") as c:
            return with_tags(c.execute(query).all(), digests)

    def find(
        self,
        tags: Mapping[str, str] | None = None,
        kind: str | None = None,
        limit: int = 100,
        after: str | None = None,
        has_tags: Iterable[str] = (),
        tag_prefixes: Mapping[str, str] | None = None,
    ) -> Page:
        """Contents carrying every tag in ``tags``, every key of ``has_tags`` (any value)
        and, for each key of ``tag_prefixes``, a value starting with the prefix given
        (case-sensitive, taken literally: no wildcards); by digest, ``limit`` at a time.

        Keyset paging: rows added meanwhile never make a page skip or repeat an item.
        """
        if limit < 1:
            raise InvalidInput("limit must be at least 1")
        if isinstance(has_tags, str):
            raise InvalidInput("has_tags takes a list of tag names, not one string")
        tag_map = check_tags(tags)
        prefixes = check_tags(tag_prefixes)
        present = check_tags(dict.fromkeys(has_tags, ""))
        query = select(contents.c.digest).order_by(contents.c.digest).limit(limit + 1)
        conditions = [tag_table.c.value == value for value in tag_map.values()]
        # substr, not LIKE: SQLite's LIKE ignores case, and a prefix holds no wildcards;
        # the index on (key, value) narrows to the key, so only its values are compared
        conditions += [func.substr(tag_table.c.value, 1, len(p)) == p for p in prefixes.values()]
        keys = [*tag_map, *prefixes]
        for key, condition in zip(keys, conditions, strict=True):
            query = query.where(_tagged(key, condition))
        for key in present:
            query = query.where(_tagged(key))
        if kind is not None:
            query = query.where(contents.c.kind == kind)
        if after is not None:
            query = query.where(contents.c.digest > str(parse_digest(after)))
        with self.db.read("listing content") as conn:
            digests = list(conn.execute(query).scalars())
        more = len(digests) > limit
        digests = digests[:limit]
        return Page(self._load(digests), digests[-1] if more else None)

    def iter_all(self, kind: str | None = None) -> Iterator[Content]:
        after: str | None = None
        while True:
            page = self.find(kind=kind, limit=1000, after=after)
            yield from page.items
            if page.next is None:
                return
            after = page.next

    def stored(self, digests: Sequence[str] | None = None) -> Iterator[Stored]:
        """The recorded contents with their keys, by digest: those of ``digests`` (absent
        ones are skipped) or every one, read a page at a time."""
        query = (
            select(contents.c.digest, contents.c.size, contents.c.kind, placements.c.pointer)
            .join(placements, placements.c.digest == contents.c.digest)
            .where(placements.c.location == PRIMARY)
            .order_by(contents.c.digest)
        )

        def rows(q: Any) -> list[Stored]:
            with self.db.read("listing content") as conn:
                return [Stored(d, n, k, key_of_pointer(p)) for d, n, k, p in conn.execute(q)]

        if digests is not None:
            wanted = sorted(set(digests))
            for i in range(0, len(wanted), 500):
                yield from rows(query.where(contents.c.digest.in_(wanted[i : i + 500])))
            return
        after = ""
        while page := rows(query.where(contents.c.digest > after).limit(5000)):
            yield from page
            after = page[-1].digest

    def without_local_copy(self) -> set[str]:
        """Digests the index records with no primary copy: ``fsck --repair-index`` forgot
        the local copy of a content that a remote still holds."""
        primary = exists().where(
            and_(placements.c.digest == contents.c.digest, placements.c.location == PRIMARY)
        )
        with self.db.read("finding contents without a local copy") as conn:
            return set(conn.execute(select(contents.c.digest).where(~primary)).scalars())

    # -- tags ----------------------------------------------------------------------------
    def tag(self, digest: str, tag_map: Mapping[str, str]) -> None:
        checked = check_tags(tag_map)
        digest = self.info(digest).digest
        rows = [{"digest": digest, "key": k, "value": v} for k, v in sorted(checked.items())]
        with self.leases.shared():  # a tag makes content live: not while gc sweeps
            self.db.transact(
                "tagging",
                lambda c: c.execute(
                    insert_or_update(c, tag_table, ["digest", "key"], ["value"]), rows
                ),
            )

    def untag(self, digest: str, keys: Iterable[str]) -> int:
        """Remove only the named tags; returns how many were removed."""
        digest = self.canonical(digest)
        names = sorted(set(keys))

        def run(conn: Connection) -> int:
            return conn.execute(
                tag_table.delete().where(tag_table.c.digest == digest, tag_table.c.key.in_(names))
            ).rowcount

        return self.db.transact("untagging", run)


def _tagged(key: str, value_matches: Any = None) -> Any:
    """A condition: the content has tag ``key`` (whose value matches, if a condition is
    given)."""
    condition = and_(tag_table.c.digest == contents.c.digest, tag_table.c.key == key)
    if value_matches is not None:
        condition = and_(condition, value_matches)
    return exists().where(condition)
