"""The record-directory pages' queries: the catalog by kind (keyset-paged, oldest first)
and one record with its configuration, committed tree and relations both ways."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from sqlalchemy import select

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


def record_dir_page(keep: Keep, uuid: str) -> dict[str, Any]:
    if not _UUID.match(uuid):
        raise NotFound(f"no record {uuid!r}")
    with keep.db.read("reading a record") as conn:
        row = conn.execute(select(records).where(records.c.uuid == uuid)).first()
        if row is None:
            raise NotFound(f"no record {uuid}")
        outgoing = conn.execute(
            select(relations.c.name, relations.c.other, records.c.kind)
            .join(records, records.c.uuid == relations.c.other, isouter=True)
            .where(relations.c.uuid == uuid)
            .order_by(relations.c.name, relations.c.other)
            .limit(RELATIONS_SHOWN)
        ).all()
        incoming = conn.execute(
            select(relations.c.name, relations.c.uuid, records.c.kind)
            .join(records, records.c.uuid == relations.c.uuid, isouter=True)
            .where(relations.c.other == uuid)
            .order_by(relations.c.name, relations.c.uuid)
            .limit(RELATIONS_SHOWN)
        ).all()
    return {
        "record": _json(row),
        "relations": [{"name": n, "uuid": u, "kind": k} for n, u, k in outgoing],
        "related_by": [{"name": n, "uuid": u, "kind": k} for n, u, k in incoming],
        "shown": RELATIONS_SHOWN,
    }
