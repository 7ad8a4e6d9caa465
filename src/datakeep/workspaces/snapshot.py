"""Taking a snapshot: every resource stored as a tree, then one manifest, then the rows.

Nothing in the workspace changes until the trees are stored, except that new results
move into their snapshot's subdirectory; a failure anywhere (a bad file, a tag in use, a
lost index) moves them back, and no snapshot row exists until the last transaction
commits it whole. Identical resources and lineage give the same manifest, hence the same
hash: the existing snapshot gets the new tag instead of a second one.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from ..errors import InvalidInput
from ..index.upsert import insert_ignore
from ..progress import ProgressCallback
from . import history as snapshot_history
from .errors import TagInUse
from .lineage import resolve_pending, split_ref
from .manifest import Manifest, ManifestResource
from .results import Moves, move_results, new_results, subdir_for, undo
from .schema import lineage, snapshot_trees, snapshots, tags
from .states import version_in

if TYPE_CHECKING:
    from .workspace import Workspace

__all__ = ["take_snapshot"]


def take_snapshot(
    ws: Workspace,
    tag: str | None,
    message: str,
    metrics: dict[str, Any],
    progress: ProgressCallback | None,
) -> str:
    if tag is not None and (not isinstance(tag, str) or not tag.strip()):
        raise InvalidInput("a tag is a non-empty string")
    if not isinstance(message, str):
        raise InvalidInput("a message is a string")
    found = ws.resources()
    if not found:
        raise InvalidInput("the workspace has no resources to snapshot (add one first)")
    if tag is not None:
        _check_tag_free(ws, tag)
    when = time.time()
    keep = ws.keep
    head = ws.head()
    before = head.trees if head is not None else {}
    trees: dict[str, str] = {}
    for resource in found:
        if resource.role != "results":
            trees[resource.name] = ws.store_resource(resource, before.get(resource.name), progress)
    moves: Moves = []
    subdir: str | None = None
    try:
        for resource in found:
            if resource.role != "results":
                continue
            names = new_results(resource.path, ws.results_template)
            if names:
                number = snapshot_history.count(ws.db, ws.name) + 1
                wanted = subdir_for(ws.results_template, tag, number, when)
                moved = move_results(resource.path, names, wanted)
                moves += moved
                subdir = moved[0][1].parent.relative_to(resource.path).as_posix()
            trees[resource.name] = ws.store_resource(resource, before.get(resource.name), progress)
        with ws.db.read("reading lineage") as conn:
            current = {
                ref: dict(entry)
                for ref, entry in conn.execute(
                    select(lineage.c.ref, lineage.c.entry).where(lineage.c.workspace == ws.name)
                )
            }

        def version_at(ref: str) -> str | None:
            resource, sub = split_ref(ref)
            return version_in(keep, trees[resource], sub) if resource in trees else None

        resolved = resolve_pending(current, version_at)
        manifest = Manifest(
            ws.name,
            tuple(
                ManifestResource(r.name, r.role, r.stored_path, trees[r.name], r.endpoint)
                for r in found
            ),
            resolved,
        )
        hash_ = keep.put(manifest.encode()).digest
        _commit(ws, hash_, tag, message, metrics, when, subdir, trees, current, resolved)
    except BaseException:
        undo(moves)
        raise
    ws.state.head = hash_
    ws.state.write(ws.root)
    return hash_


def _check_tag_free(ws: Workspace, tag: str) -> None:
    with ws.db.read("reading tags") as conn:
        holder = conn.execute(
            select(tags.c.hash).where(tags.c.workspace == ws.name, tags.c.tag == tag)
        ).scalar()
    # on the snapshot the workspace is at, the tag may be given again to identical content:
    # the commit decides, once the hash is known
    if holder is not None and holder != ws.state.head:
        raise TagInUse(f"tag {tag!r} already names snapshot {holder}")


def _commit(
    ws: Workspace,
    hash_: str,
    tag: str | None,
    message: str,
    metrics: dict[str, Any],
    when: float,
    subdir: str | None,
    trees: dict[str, str],
    current: dict[str, dict[str, Any]],
    resolved: dict[str, dict[str, Any]],
) -> None:
    """The snapshot's rows in one transaction: its history row (kept as it is if the
    same snapshot exists), trees, tag, and the lineage with its versions resolved."""
    name = ws.name

    def run(conn: Connection) -> None:
        row = {
            "workspace": name,
            "hash": hash_,
            "message": message,
            "created_at": when,
            "metrics": metrics,
            "results_subdir": subdir,
        }
        conn.execute(insert_ignore(conn, snapshots, ["workspace", "hash"]), [row])
        conn.execute(
            insert_ignore(conn, snapshot_trees, ["workspace", "hash", "resource"]),
            [
                {"workspace": name, "hash": hash_, "resource": r, "tree": t}
                for r, t in trees.items()
            ],
        )
        if tag is not None:
            conn.execute(
                insert_ignore(conn, tags, ["workspace", "tag"]),
                [{"workspace": name, "tag": tag, "hash": hash_}],
            )
            holder = conn.execute(
                select(tags.c.hash).where(tags.c.workspace == name, tags.c.tag == tag)
            ).scalar()
            if holder != hash_:
                raise TagInUse(f"tag {tag!r} already names snapshot {holder}")
        now = {
            ref: entry
            for ref, entry in conn.execute(
                select(lineage.c.ref, lineage.c.entry).where(lineage.c.workspace == name)
            )
        }
        for ref, entry in resolved.items():
            # a step that replaced this entry meanwhile keeps its own (pending) versions
            if entry != current[ref] and now.get(ref, {}).get("step_id") == entry["step_id"]:
                conn.execute(
                    lineage.update()
                    .where(lineage.c.workspace == name, lineage.c.ref == ref)
                    .values(entry=entry)
                )

    ws.db.transact("recording a snapshot", run)
