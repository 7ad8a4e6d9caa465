"""Rebuilding the catalog from the stored record directories alone: every stored tree that
holds a record directory (its ``.datakeep-record`` sentinel) gives its record's row, the
newest version of each record wins, and the edge logs give the relations. The private
overlay (hidden, private) is the keep's own and is left as it is."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Connection

from ..errors import DatakeepError
from ..index.upsert import insert_ignore, insert_or_update
from ..keep import Keep
from ..trees.format import decode_tree
from .schema import records, relations

__all__ = ["reindex"]

_CATALOG = [
    "kind",
    "identity",
    "parent",
    "predicate",
    "config",
    "label",
    "created_at",
    "tree",
    "updated_at",
    "started_at",
    "heartbeat_at",
    "finished_at",
]


def _version(keep: Keep, tree: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(the record's row, its edges) from a stored tree, or None if it holds no record."""
    files = {e.path: e.digest for e in decode_tree(keep.get(tree)) if e.digest is not None}
    if ".datakeep-record" not in files or "id.json" not in files:
        return None

    def text(name: str) -> str | None:
        digest = files.get(name)
        return None if digest is None else keep.get(digest).decode()

    header = json.loads(text("id.json") or "{}")
    marker = {
        name: float(value) if (value := text(name)) else None
        for name in ("updated_at", "started_at", "heartbeat_at", "finished_at")
    }
    row = {
        "uuid": header["uuid"],
        "kind": header["kind"],
        "identity": header["identity"],
        "parent": header.get("parent") or "",
        "predicate": header.get("predicate", ""),
        "config": json.loads(text("model.json") or "null"),
        "label": header.get("label"),
        "created_at": header["created_at"],
        "tree": tree,
        "hidden": False,
        **marker,
    }
    log = text("related/metadata.jsonl") or ""
    edges = [json.loads(line) for line in log.splitlines() if line]
    return row, edges


def reindex(keep: Keep) -> int:
    """Rebuild the records catalog from the stored trees; the number of records found."""
    newest: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for content in keep.store.iter_all(kind="tree"):
        try:
            found = _version(keep, content.digest)
        except (DatakeepError, ValueError, KeyError):
            continue  # not a readable record directory: not a record
        if found is None:
            continue
        row, _edges = found
        known = newest.get(row["uuid"])
        if known is None or (row["updated_at"] or 0) > (known[0]["updated_at"] or 0):
            newest[row["uuid"]] = found
    rows = [row for row, _ in newest.values()]
    now = time.time()
    edges = [
        {"uuid": e["uuid"], "name": e["name"], "other": e["related_uuid"], "created_at": now}
        for _, logged in newest.values()
        for e in logged
    ]

    def write(conn: Connection) -> None:
        if rows:
            conn.execute(
                insert_or_update(conn, records, ["uuid"], _CATALOG),
                sorted(rows, key=lambda r: r["uuid"]),
            )
        if edges:
            conn.execute(insert_ignore(conn, relations, ["uuid", "name", "other"]), edges)

    keep.db.transact("rebuilding the records catalog", write)
    return len(rows)
