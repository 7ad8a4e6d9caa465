"""The workspace pages' queries: workspaces, a workspace's resources and snapshot history
(keyset-paged, newest first) with metrics, one snapshot, and the diff of two. Read from
the index's workspace tables and the keep's trees, without the workspace's directory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, or_, select, union

from ..errors import NotFound
from ..keep import Keep
from ..trees.diff import diff_trees
from ..trees.format import decode_tree
from ..workspaces.history import resolve
from ..workspaces.schema import resources, snapshot_trees, snapshots, tags
from .display import short

__all__ = [
    "DIFF_SHOWN",
    "METRIC_SNAPSHOTS",
    "PAGE",
    "diff_page",
    "snapshot_page",
    "workspace_page",
    "workspaces_page",
]

PAGE = 50
METRIC_SNAPSHOTS = 200
"""Snapshots a metric chart covers at most: the newest."""
DIFF_SHOWN = 1000
"""Paths listed per resource and kind of change; the counts are always whole."""


def workspaces_page(keep: Keep, after: str | None) -> dict[str, Any]:
    """Workspace names (any with a resource or a snapshot), by name."""
    names = union(select(resources.c.workspace), select(snapshots.c.workspace)).subquery()
    query = select(names.c.workspace).order_by(names.c.workspace).limit(PAGE + 1)
    if after:
        query = query.where(names.c.workspace > after)
    with keep.db.read("listing workspaces") as conn:
        found = list(conn.execute(query).scalars())
    more = len(found) > PAGE
    found = found[:PAGE]
    return {"items": found, "next": found[-1] if more else None}


def _snapshot_rows(
    conn: Any, workspace: str, rows: Sequence[Any], first: int
) -> list[dict[str, Any]]:
    hashes = [r.hash for r in rows]
    named: dict[str, list[str]] = {}
    for tag, hash_ in conn.execute(
        select(tags.c.tag, tags.c.hash)
        .where(tags.c.workspace == workspace, tags.c.hash.in_(hashes))
        .order_by(tags.c.tag)
    ):
        named.setdefault(hash_, []).append(tag)
    trees: dict[str, dict[str, str]] = {}
    for hash_, resource, tree in conn.execute(
        select(snapshot_trees.c.hash, snapshot_trees.c.resource, snapshot_trees.c.tree).where(
            snapshot_trees.c.workspace == workspace, snapshot_trees.c.hash.in_(hashes)
        )
    ):
        trees.setdefault(hash_, {})[resource] = tree
    return [
        {
            "number": first - i,
            "hash": r.hash,
            "tags": named.get(r.hash, []),
            "message": r.message,
            "created_at": r.created_at,
            "metrics": dict(r.metrics),
            "results_subdir": r.results_subdir,
            "trees": dict(sorted(trees.get(r.hash, {}).items())),
        }
        for i, r in enumerate(rows)
    ]


def _page_token(row: Any) -> str:
    return f"{row.created_at!r}/{row.id}"


def _after(token: str) -> Any:
    stamp, _, ident = token.partition("/")
    try:
        created, number = float(stamp), int(ident)
    except ValueError:
        raise NotFound(f"not a page token: {token!r}") from None
    return or_(
        snapshots.c.created_at < created,
        and_(snapshots.c.created_at == created, snapshots.c.id < number),
    )


def workspace_page(keep: Keep, workspace: str, after: str | None) -> dict[str, Any]:
    """Resources, one page of the history (newest first) and the metrics of the newest
    :data:`METRIC_SNAPSHOTS` snapshots, oldest first, for charts."""
    mine = snapshots.c.workspace == workspace
    newest_first = (snapshots.c.created_at.desc(), snapshots.c.id.desc())
    query = select(snapshots).where(mine)
    if after:
        query = query.where(_after(after))
    with keep.db.read("reading a workspace") as conn:
        listed = conn.execute(
            select(resources.c.name, resources.c.role, resources.c.path, resources.c.endpoint)
            .where(resources.c.workspace == workspace)
            .order_by(resources.c.name)
        ).all()
        rows = conn.execute(query.order_by(*newest_first).limit(PAGE + 1)).all()
        total = int(conn.execute(select(func.count()).where(mine)).scalar() or 0)
        if not listed and not total:
            raise NotFound(f"no workspace {workspace!r}")
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        first = total
        if rows:  # the history number of the page's newest: snapshots up to it
            newer = or_(
                snapshots.c.created_at > rows[0].created_at,
                and_(snapshots.c.created_at == rows[0].created_at, snapshots.c.id > rows[0].id),
            )
            first = total - int(conn.execute(select(func.count()).where(mine, newer)).scalar() or 0)
        history = _snapshot_rows(conn, workspace, rows, first)
        recent = conn.execute(
            select(snapshots.c.hash, snapshots.c.metrics)
            .where(mine)
            .order_by(*newest_first)
            .limit(METRIC_SNAPSHOTS)
        ).all()
    series: dict[str, list[tuple[str, float]]] = {}
    for number, (hash_, metrics) in zip(range(total, 0, -1), recent, strict=False):
        for name, value in dict(metrics).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                series.setdefault(name, []).append((f"#{number} {short(hash_)}", value))
    return {
        "workspace": workspace,
        "resources": [{"name": n, "role": r, "path": p, "endpoint": e} for n, r, p, e in listed],
        "snapshots": history,
        "next": _page_token(rows[-1]) if more else None,
        "count": total,
        "metrics": {name: list(reversed(points)) for name, points in sorted(series.items())},
    }


def snapshot_page(keep: Keep, workspace: str, name: str) -> dict[str, Any]:
    """One snapshot (by tag, hash or prefix) with its trees and the lineage it kept."""
    from ..workspaces.manifest import Manifest

    snapshot = resolve(keep.db, workspace, name)
    manifest = Manifest.decode(keep.get(snapshot.hash), f"snapshot {snapshot.hash}")
    return {
        "workspace": workspace,
        "snapshot": snapshot.to_json(),
        "resources": [r.to_json() for r in manifest.resources],
        "lineage": manifest.lineage,
    }


def _tree_entries(keep: Keep, tree: str | None) -> dict[str, Any]:
    if tree is None:
        return {}
    return {e.path: e for e in decode_tree(keep.get(tree), keep.algorithm)}


def diff_page(keep: Keep, workspace: str, a: str, b: str) -> dict[str, Any]:
    """Files added, removed, changed (content) and changed in mode only, per resource,
    from snapshot ``a`` to ``b``."""
    old, new = resolve(keep.db, workspace, a), resolve(keep.db, workspace, b)
    changes = []
    for resource in sorted(set(old.trees) | set(new.trees)):
        before, after = old.trees.get(resource), new.trees.get(resource)
        if before == after:
            continue
        if before is not None and after is not None:
            found = diff_trees(keep.store, before, after)
            parts = {
                "added": [e.path for e in found.added],
                "removed": [e.path for e in found.removed],
                "changed": [e.path for _, e in found.changed],
                "mode": [e.path for _, e in found.mode_changed],
            }
        else:
            side = sorted(_tree_entries(keep, before or after))
            parts = {"added": [] if before else side, "removed": side if before else []}
            parts |= {"changed": [], "mode": []}
        changes.append(
            {
                "resource": resource,
                "counts": {k: len(v) for k, v in parts.items()},
                **{k: v[:DIFF_SHOWN] for k, v in parts.items()},
            }
        )
    return {
        "workspace": workspace,
        "a": old.to_json(),
        "b": new.to_json(),
        "changes": changes,
        "shown": DIFF_SHOWN,
    }
