"""The file-store pages' queries: the stores, and a store's files by namespace and name
(keyset-paged), each tied to the content that holds its bytes."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import and_, or_, select

from ..errors import NotFound
from ..files.schema import entries, stores
from ..keep import Keep

__all__ = ["PAGE", "file_store_page", "file_stores_page"]

PAGE = 100


def file_stores_page(keep: Keep, after: str | None) -> dict[str, Any]:
    query = select(stores).order_by(stores.c.name).limit(PAGE + 1)
    if after:
        query = query.where(stores.c.name > after)
    with keep.db.read("listing file stores") as conn:
        rows = conn.execute(query).all()
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return {
        "items": [{"name": r.name, "created_at": r.created_at} for r in rows],
        "next": rows[-1].name if more else None,
    }


def _after(token: str) -> Any:
    try:
        namespace, name = json.loads(token)
    except (ValueError, TypeError):
        raise NotFound(f"not a page token: {token!r}") from None
    return or_(
        entries.c.namespace > namespace,
        and_(entries.c.namespace == namespace, entries.c.name > name),
    )


def file_store_page(
    keep: Keep, store: str, namespace: str | None, after: str | None
) -> dict[str, Any]:
    """The store's files by (namespace, name); ``namespace`` keeps those of one event
    (``S230518h``) or of one event and production (``S230518h/Prod0``)."""
    query = select(entries).where(entries.c.store == store)
    if namespace:
        query = query.where(
            or_(entries.c.namespace == namespace, entries.c.namespace.startswith(namespace + "/"))
        )
    if after:
        query = query.where(_after(after))
    query = query.order_by(entries.c.namespace, entries.c.name).limit(PAGE + 1)
    with keep.db.read("listing a file store") as conn:
        found = conn.execute(select(stores).where(stores.c.name == store)).first()
        if found is None:
            raise NotFound(f"no file store {store!r}")
        rows = conn.execute(query).all()
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return {
        "store": {"name": found.name, "created_at": found.created_at},
        "namespace": namespace,
        "items": [
            {
                "uuid": r.uuid,
                "namespace": r.namespace,
                "name": r.name,
                "digest": r.digest,
                "size": r.size,
                "md5": r.md5,
                "sha256": r.sha256,
                "created_at": r.created_at,
            }
            for r in rows
        ],
        "next": json.dumps([rows[-1].namespace, rows[-1].name]) if more else None,
    }
