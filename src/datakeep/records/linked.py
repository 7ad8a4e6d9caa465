"""Records with their relations: edges kept in each record's directory (an append-only log
of unique lines, so two copies merge by union) and in the catalog; records carried along
with those they relate to; record directories made elsewhere taken in."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from ..errors import InvalidInput
from ..index.upsert import insert_ignore
from .formats import load, save
from .paths import RECORD_FORMAT
from .schema import records, relations

if TYPE_CHECKING:
    from .store import RecordStore

__all__ = ["download", "ingest_directory", "relate", "related", "upload"]

_LOG = Path("related") / "metadata.jsonl"


def relate(store: RecordStore, name: str, uuid: str, other: str) -> None:
    if not isinstance(name, str) or not name or len(name) > 255:
        raise InvalidInput(f"a relation needs a name of 1-255 characters, not {name!r}")
    source, target = store.resolve(uuid), store.resolve(other)
    _log(store.fetch(source), [(name, target)], source)
    _record_edges(store, [{"uuid": source, "name": name, "other": target}])


def related(store: RecordStore, uuid: str, name: str | None, inverse: bool) -> list[str]:
    full = store.resolve(uuid)
    mine, theirs = (
        (relations.c.other, relations.c.uuid) if inverse else (relations.c.uuid, relations.c.other)
    )
    query = select(theirs).where(mine == full).order_by(theirs)
    if name is not None:
        query = query.where(relations.c.name == name)
    with store.db.read("reading relations") as conn:
        return list(conn.execute(query).scalars())


def _neighbours(store: RecordStore, uuid: str) -> set[str]:
    return set(related(store, uuid, None, False)) | set(related(store, uuid, None, True))


def _closure(store: RecordStore, uuid: str, depth: bool | int) -> list[str]:
    """``uuid``, then the records related to it (``depth`` 2: transitively), once each."""
    chosen = [uuid]
    frontier = [uuid] if depth else []
    while frontier:
        found = {n for u in frontier for n in _neighbours(store, u)} - set(chosen)
        chosen += sorted(found)
        frontier = sorted(found) if int(depth) == 2 else []
    return chosen


def upload(store: RecordStore, uuid: str, related_too: bool | int) -> list[str]:
    chosen = _closure(store, store.resolve(uuid), related_too)
    for each in chosen:
        store.commit(each)
    return chosen


def download(
    store: RecordStore, uuid: str, destination: Path, related_too: bool | int
) -> list[Path]:
    written = []
    for each in _closure(store, store.resolve(uuid), related_too):
        target = destination / each
        if not target.exists():
            store.retrieve(each, target)
        written.append(target)
    return written


def ingest_directory(store: RecordStore, directory: Path) -> str:
    try:
        sentinel = (directory / ".datakeep-record").read_text()
        header = json.loads((directory / "id.json").read_text())
        config = json.loads((directory / "model.json").read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{directory} is not a record directory: {exc}") from exc
    if sentinel.strip() != RECORD_FORMAT:
        raise InvalidInput(f"{directory} is a {sentinel.strip()!r} directory, not {RECORD_FORMAT}")
    uuid = str(header["uuid"])
    row = {
        "uuid": uuid,
        "kind": header["kind"],
        "identity": header["identity"],
        "parent": header.get("parent") or "",
        "predicate": header.get("predicate", ""),
        "config": config,
        "label": header.get("label"),
        "created_at": header["created_at"],
        "hidden": False,
    }

    def insert(conn: Connection) -> None:
        conn.execute(insert_ignore(conn, records, ["uuid"]), [row])

    store.db.transact("ingesting a record", insert)
    working = store.directory(uuid)
    working.mkdir(parents=True, exist_ok=True)
    for source in sorted(directory.rglob("*")):
        relative = source.relative_to(directory)
        if source.is_symlink() or not source.is_file() or relative == _LOG:
            continue  # links are not followed; the edge log is merged below
        target = working / relative
        if not target.exists():  # merged: what is there already stays
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    edges = load(directory / _LOG, [])
    _log(working, [(e["name"], e["related_uuid"]) for e in edges], uuid)
    _record_edges(
        store, [{"uuid": e["uuid"], "name": e["name"], "other": e["related_uuid"]} for e in edges]
    )
    store.commit(uuid, mirror=False)
    return uuid


def _log(root: Path, edges: list[tuple[str, str]], uuid: str) -> None:
    """Append the edges the record's log does not hold yet (the log is a set of lines)."""
    log = root / _LOG
    known = load(log, [])
    for name, other in edges:
        line: dict[str, Any] = {"name": name, "uuid": uuid, "related_uuid": other}
        if line not in known:
            save(log, line)
            known.append(line)


def _record_edges(store: RecordStore, edges: list[dict[str, Any]]) -> None:
    if not edges:
        return
    now = time.time()
    rows = [{**e, "created_at": now} for e in edges]
    store.db.transact(
        "relating records",
        lambda c: c.execute(insert_ignore(c, relations, ["uuid", "name", "other"]), rows),
    )
