"""The content pages' queries: a keyset-paged list by tag and kind, and one content with
its aliases, placements and pin. Each returns a JSON-able dict, which the HTML page
renders and ``/api/`` returns as it is."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..content import PRIMARY
from ..content.pointers import key_of_pointer
from ..content.tagfilters import parse_tag_filters
from ..errors import InvalidInput
from ..index import pins, placements
from ..keep import Keep

__all__ = ["PAGE", "content_list", "content_page"]

PAGE = 50


def content_list(
    keep: Keep, tags: list[str], kind: str | None, after: str | None, limit: int = PAGE
) -> dict[str, Any]:
    """One page of contents, by digest, after the digest ``after``."""
    if kind not in (None, "blob", "tree"):
        raise InvalidInput(f"kind {kind!r} is neither blob nor tree")
    filters = parse_tag_filters(t.strip() for t in tags if t.strip())
    page = keep.find(filters.exact, kind, limit, after or None, filters.present, filters.prefixes)
    return {
        "items": [c.as_json() for c in page.items],
        "next": page.next,
        "filters": {"tag": tags, "kind": kind, "after": after},
    }


def content_page(keep: Keep, name: str) -> dict[str, Any]:
    """A content by digest (or unique prefix, or alias) with where its copies are."""
    digest = keep.store.resolve(name)
    info = keep.info(digest)
    with keep.db.read("reading placements") as conn:
        rows = conn.execute(
            select(placements.c.location, placements.c.backend, placements.c.pointer)
            .where(placements.c.digest == info.digest)
            .order_by(placements.c.location)
        ).all()
        pin = conn.execute(
            select(pins.c.note, pins.c.created_at).where(pins.c.digest == info.digest)
        ).first()
    where = [
        {
            "location": location,
            "role": "primary" if location == PRIMARY else "remote (mirror)",
            "backend": backend,
            "key": key_of_pointer(pointer),
        }
        for location, backend, pointer in rows
    ]
    where.sort(key=lambda p: (p["location"] != PRIMARY, p["location"]))
    return {
        "content": info.as_json(),
        "aliases": keep.aliases(info.digest),
        "placements": where,
        "pin": None if pin is None else {"note": pin.note, "created_at": pin.created_at},
    }
