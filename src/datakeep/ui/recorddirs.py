"""The record-directory pages' queries: the catalog by kind (keyset-paged, oldest first)
and one record with its configuration, committed tree and relations both ways."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection, select

from ..errors import NotFound
from ..keep import Keep
from ..records.find import find_records
from ..records.model import info_of
from ..records.schema import records, relations

__all__ = ["PAGE", "RELATIONS_SHOWN", "record_dir_page", "record_dirs_page"]

PAGE = 50
RELATIONS_SHOWN = 500
_UUID = re.compile(r"[0-9a-f]{32}\Z")


def _json(row: Any) -> dict[str, Any]:
    info = info_of(row)
    return {**asdict(info), "state": info.state}


def record_dirs_page(keep: Keep, kind: str | None, after: str | None) -> dict[str, Any]:
    rows, token = find_records(keep.db, kind=kind or None, limit=PAGE, after=after or None)
    return {"items": [_json(r) for r in rows], "next": token, "kind": kind}


def _related(
    conn: Connection, this: Any, that: Any, uuid: str
) -> list[tuple[str, str, str | None]]:
    """(relation name, the record at the other end, its kind) of the relations whose
    ``this`` end is ``uuid``, by name, at most :data:`RELATIONS_SHOWN`."""
    rows = conn.execute(
        select(relations.c.name, that, records.c.kind)
        .join(records, records.c.uuid == that, isouter=True)
        .where(this == uuid)
        .order_by(relations.c.name, that)
        .limit(RELATIONS_SHOWN)
    )
    return [(name, other, kind) for name, other, kind in rows]


def record_dir_page(keep: Keep, uuid: str) -> dict[str, Any]:
    if not _UUID.match(uuid):
        raise NotFound(f"no record {uuid!r}")
    with keep.db.read("reading a record") as conn:
        row = conn.execute(select(records).where(records.c.uuid == uuid)).first()
        if row is None:
            raise NotFound(f"no record {uuid}")
        outgoing = _related(conn, relations.c.uuid, relations.c.other, uuid)
        incoming = _related(conn, relations.c.other, relations.c.uuid, uuid)
    return {
        "record": _json(row),
        "relations": [{"name": n, "uuid": u, "kind": k} for n, u, k in outgoing],
        "related_by": [{"name": n, "uuid": u, "kind": k} for n, u, k in incoming],
        "shown": RELATIONS_SHOWN,
    }
