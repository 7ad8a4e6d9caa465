"""Rebuilding the catalog from the stored record directories alone: every stored tree that
holds a record directory (its ``.datakeep-record`` sentinel) gives its record's row, the
newest version of each record wins, and the edge logs give the relations. The private
overlay (hidden, private) is the keep's own and is left as it is."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection

from ..content import ContentStore, Stored
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


_HEADER_FILES = (
    "id.json",
    "model.json",
    "updated_at",
    "started_at",
    "heartbeat_at",
    "finished_at",
    "related/metadata.jsonl",
)
_BATCH = 2000


def _read(store: ContentStore, digests: set[str]) -> dict[str, bytes]:
    """The verified bytes of ``digests`` (those that read well), each pack read once."""
    return {
        item.digest: data
        for item, data in store.read_many(list(store.stored(sorted(digests))))
        if isinstance(data, bytes)
    }


def _versions(
    store: ContentStore, trees: list[Stored]
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(the record's row, its edges) of each of ``trees`` that holds a record directory."""
    manifests: dict[str, dict[str, str]] = {}
    for item, data in store.read_many(trees):
        if not isinstance(data, bytes):
            continue  # unreadable: verify and repair deal with it
        try:
            files = {e.path: e.digest for e in decode_tree(data, store.algorithm) if e.digest}
        except DatakeepError:
            continue
        if ".datakeep-record" in files and "id.json" in files:
            manifests[item.digest] = files
    wanted = {
        files[name] for files in manifests.values() for name in _HEADER_FILES if name in files
    }
    blobs = _read(store, wanted)
    for tree, files in manifests.items():
        try:
            text = {name: blobs[files[name]].decode() for name in _HEADER_FILES if name in files}
            header = json.loads(text["id.json"])
            markers = {
                name: float(text[name]) if name in text else None for name in _HEADER_FILES[2:6]
            }
            row = {
                "uuid": header["uuid"],
                "kind": header["kind"],
                "identity": header["identity"],
                "parent": header.get("parent") or "",
                "predicate": header.get("predicate", ""),
                "config": json.loads(text.get("model.json", "null")),
                "label": header.get("label"),
                "created_at": header["created_at"],
                "tree": tree,
                "hidden": False,
                **markers,
            }
            log = text.get("related/metadata.jsonl", "")
            edges = [json.loads(line) for line in log.splitlines() if line]
        except (KeyError, ValueError):
            continue  # not a readable record directory: not a record
        yield row, edges


def reindex(keep: Keep) -> int:
    """Rebuild the records catalog from the stored trees; the number of records found."""
    newest: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    trees = [item for item in keep.store.stored() if item.kind == "tree"]
    for i in range(0, len(trees), _BATCH):
        for row, edges in _versions(keep.store, trees[i : i + _BATCH]):
            known = newest.get(row["uuid"])
            if known is None or (row["updated_at"] or 0) > (known[0]["updated_at"] or 0):
                newest[row["uuid"]] = (row, edges)
    rows = sorted((row for row, _ in newest.values()), key=lambda r: r["uuid"])
    now = time.time()
    edges = [
        {"uuid": e["uuid"], "name": e["name"], "other": e["related_uuid"], "created_at": now}
        for _, logged in newest.values()
        for e in logged
    ]

    def write(conn: Connection) -> None:
        for j in range(0, len(rows), _BATCH):
            conn.execute(insert_or_update(conn, records, ["uuid"], _CATALOG), rows[j : j + _BATCH])
        if edges:
            conn.execute(insert_ignore(conn, relations, ["uuid", "name", "other"]), edges)

    keep.db.transact("rebuilding the records catalog", write)
    return len(rows)
