"""A workspace's snapshots as the index holds them: history, lookup by tag, hash or
prefix, tags, deletion."""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, select

from ..errors import InvalidInput, NotFound
from ..index import IndexDatabase
from .errors import AmbiguousSnapshot
from .model import Snapshot
from .schema import snapshot_trees, snapshots, tags

__all__ = [
    "count",
    "delete_snapshot_rows",
    "history",
    "newest",
    "remove_tag",
    "resolve",
    "snapshot_of",
]


def _all(conn: Connection, workspace: str, only: str | None = None) -> list[Snapshot]:
    """Every snapshot of ``workspace`` in the order taken, or just the one ``only``."""
    query = select(snapshots).where(snapshots.c.workspace == workspace)
    named_tags = select(tags.c.tag, tags.c.hash).where(tags.c.workspace == workspace)
    named_trees = select(snapshot_trees.c.hash, snapshot_trees.c.resource, snapshot_trees.c.tree)
    named_trees = named_trees.where(snapshot_trees.c.workspace == workspace)
    first = 1
    if only is not None:
        query = query.where(snapshots.c.hash == only)
        named_tags = named_tags.where(tags.c.hash == only)
        named_trees = named_trees.where(snapshot_trees.c.hash == only)
    rows = conn.execute(query.order_by(snapshots.c.created_at, snapshots.c.id)).all()
    if only is not None and rows:
        earlier = (snapshots.c.created_at < rows[0].created_at) | (
            (snapshots.c.created_at == rows[0].created_at) & (snapshots.c.id < rows[0].id)
        )
        count = select(func.count()).where(snapshots.c.workspace == workspace, earlier)
        first = 1 + int(conn.execute(count).scalar() or 0)
    names: dict[str, list[str]] = {}
    for tag, hash_ in conn.execute(named_tags.order_by(tags.c.tag)):
        names.setdefault(hash_, []).append(tag)
    trees: dict[str, dict[str, str]] = {}
    for hash_, resource, tree in conn.execute(named_trees):
        trees.setdefault(hash_, {})[resource] = tree
    return [
        Snapshot(
            number,
            row.hash,
            tuple(names.get(row.hash, ())),
            row.message,
            row.created_at,
            dict(row.metrics),
            row.results_subdir,
            dict(sorted(trees.get(row.hash, {}).items())),
        )
        for number, row in enumerate(rows, start=first)
    ]


def history(
    db: IndexDatabase, workspace: str, newest_first: bool = True, max_count: int | None = None
) -> list[Snapshot]:
    """Every snapshot, numbered in the order they were taken."""
    if max_count is not None and max_count < 0:
        raise InvalidInput("max_count must be zero or more")
    with db.read("reading snapshot history") as conn:
        found = _all(conn, workspace)
    if newest_first:
        found.reverse()
    return found if max_count is None else found[:max_count]


def resolve(db: IndexDatabase, workspace: str, name: str) -> Snapshot:
    """The snapshot a tag, a full hash or a unique hash prefix (with or without the
    algorithm) names; an ambiguous prefix lists its candidates."""
    if not isinstance(name, str) or not name:
        raise InvalidInput("name a snapshot by tag, hash or hash prefix")
    everything = history(db, workspace, newest_first=False)
    for snapshot in everything:
        if name in snapshot.tags or name == snapshot.hash:
            return snapshot
    prefix = name.partition(":")[2] if ":" in name else name
    if len(prefix) < 4 or any(c not in "0123456789abcdef" for c in prefix):
        raise NotFound(f"no snapshot tagged {name!r} in workspace {workspace!r}")
    matches = [s for s in everything if s.hash.partition(":")[2].startswith(prefix)]
    if not matches:
        raise NotFound(f"no snapshot {name!r} in workspace {workspace!r}")
    if len(matches) > 1:
        listed = ", ".join(f"{s.hash} ({', '.join(s.tags) or 'untagged'})" for s in matches)
        raise AmbiguousSnapshot(f"{name!r} names {len(matches)} snapshots: {listed}")
    return matches[0]


def newest(db: IndexDatabase, workspace: str) -> Snapshot | None:
    """The snapshot taken last, read alone (not with the whole history)."""
    query = (
        select(snapshots.c.hash)
        .where(snapshots.c.workspace == workspace)
        .order_by(snapshots.c.created_at.desc(), snapshots.c.id.desc())
        .limit(1)
    )
    with db.read("reading the newest snapshot") as conn:
        hash_ = conn.execute(query).scalar()
    return snapshot_of(db, workspace, hash_)


def count(db: IndexDatabase, workspace: str) -> int:
    query = select(func.count()).where(snapshots.c.workspace == workspace)
    with db.read("counting snapshots") as conn:
        return int(conn.execute(query).scalar() or 0)


def snapshot_of(db: IndexDatabase, workspace: str, hash_: str | None) -> Snapshot | None:
    if hash_ is None:
        return None
    with db.read("reading a snapshot") as conn:
        found = _all(conn, workspace, hash_)
    return found[0] if found else None


def remove_tag(db: IndexDatabase, workspace: str, hash_: str, tag: str) -> None:
    """Remove ``tag`` from the snapshot ``hash_``, and no other."""

    def run(conn: Connection) -> int:
        return conn.execute(
            delete(tags).where(
                tags.c.workspace == workspace, tags.c.tag == tag, tags.c.hash == hash_
            )
        ).rowcount

    if db.transact("removing a tag", run) == 0:
        raise NotFound(f"snapshot {hash_} has no tag {tag!r}")


def delete_snapshot_rows(db: IndexDatabase, workspace: str, hash_: str) -> None:
    """The snapshot, its tags and its trees' rows (gc reclaims what nothing else holds)."""

    def run(conn: Connection) -> None:
        for table in (tags, snapshot_trees, snapshots):
            conn.execute(delete(table).where(table.c.workspace == workspace, table.c.hash == hash_))

    db.transact("deleting a snapshot", run)
