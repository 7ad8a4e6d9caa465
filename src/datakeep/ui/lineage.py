"""The lineage graph of a workspace's ref: the steps upstream of it and what they read,
as nodes and edges to draw, from the lineage as it stands now or as a snapshot kept it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..errors import NotFound
from ..keep import Keep
from ..workspaces.history import resolve
from ..workspaces.lineage import enclosing
from ..workspaces.schema import lineage as lineage_rows
from .trees import check_url_path

__all__ = ["MAX_STEPS", "lineage_page"]

MAX_STEPS = 200
"""Steps drawn at most: a graph beyond that is not read by anyone."""


def _entries(keep: Keep, workspace: str, at: str | None) -> dict[str, dict[str, Any]]:
    if at:
        from ..workspaces.manifest import Manifest

        snapshot = resolve(keep.db, workspace, at)
        return Manifest.decode(keep.get(snapshot.hash), f"snapshot {snapshot.hash}").lineage
    with keep.db.read("reading lineage") as conn:
        rows = conn.execute(
            select(lineage_rows.c.ref, lineage_rows.c.entry).where(
                lineage_rows.c.workspace == workspace
            )
        )
        return {ref: dict(entry) for ref, entry in rows}


def lineage_page(keep: Keep, workspace: str, ref: str, at: str | None) -> dict[str, Any]:
    """Every step upstream of ``ref``, nearest first, with a layered graph: data refs and
    steps as nodes (layer 0 is ``ref``), an edge from each input to its step and from
    each step to its output."""
    ref = check_url_path(ref)
    if not ref:
        raise NotFound("name a resource or a path inside one")
    entries = _entries(keep, workspace, at)
    nodes: dict[str, tuple[str, str, str, int]] = {f"d:{ref}": (f"d:{ref}", ref, "data", 0)}
    edges: list[tuple[str, str]] = []
    steps: list[dict[str, Any]] = []
    seen: set[str] = set()
    queue = [(ref, 0)]
    while queue and len(steps) < MAX_STEPS:
        wanted, layer = queue.pop(0)
        found = enclosing(entries, wanted)
        if found is None:
            continue
        output, entry = found
        step_node = f"s:{entry['step_id']}"
        edges.append((step_node, f"d:{wanted}"))
        if entry["step_id"] in seen:
            continue
        seen.add(entry["step_id"])
        steps.append({"output": output, **entry})
        nodes[step_node] = (step_node, entry["step"], "step", layer + 1)
        for used in entry.get("inputs", []) + entry.get("code", []):
            data_node = f"d:{used['ref']}"
            if data_node not in nodes:
                nodes[data_node] = (data_node, used["ref"], "data", layer + 2)
                queue.append((used["ref"], layer + 2))
            edges.append((data_node, step_node))
    return {
        "workspace": workspace,
        "ref": ref,
        "at": at,
        "steps": steps,
        "nodes": [
            {"id": i, "label": label, "kind": kind, "layer": layer}
            for i, label, kind, layer in nodes.values()
        ],
        "edges": [{"from": a, "to": b} for a, b in dict.fromkeys(edges)],
        "truncated": bool(queue),
    }
