"""The content pages' queries: a keyset-paged list by tag and kind, and one content with
its aliases, placements and pin. Each returns a JSON-able dict, which the HTML page
renders and ``/api/`` returns as it is."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..content import PRIMARY, Content
from ..content.pointers import key_of_pointer
from ..errors import InvalidInput
from ..index import pins, placements
from ..keep import Keep

__all__ = ["PAGE", "content_json", "content_list", "content_page", "parse_tag_filters"]

PAGE = 50


def content_json(c: Content) -> dict[str, Any]:
    return {
        "digest": c.digest,
        "size": c.size,
        "kind": c.kind,
        "created_at": c.created_at,
        "tags": c.tags,
    }


def parse_tag_filters(
    filters: list[str],
) -> tuple[dict[str, str], list[str], dict[str, str]]:
    """``key`` (any value), ``key=value`` and ``key=prefix*`` (a real ``*`` at the end is
    written ``\\*``), as ``datakeep ls --tag`` takes them."""
    exact: dict[str, str] = {}
    present: list[str] = []
    prefixes: dict[str, str] = {}
    for item in filters:
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidInput(f"{item!r} is not KEY, KEY=VALUE or KEY=PREFIX*")
        if not sep:
            present.append(key)
        elif value.endswith("\\*"):
            exact[key] = value[:-2] + "*"
        elif value.endswith("*"):
            prefixes[key] = value[:-1]
        else:
            exact[key] = value
    return exact, present, prefixes


def content_list(
    keep: Keep, tags: list[str], kind: str | None, after: str | None, limit: int = PAGE
) -> dict[str, Any]:
    """One page of contents, by digest, after the digest ``after``."""
    if kind not in (None, "blob", "tree"):
        raise InvalidInput(f"kind {kind!r} is neither blob nor tree")
    exact, present, prefixes = parse_tag_filters(tags)
    page = keep.find(exact, kind, limit, after or None, present, prefixes)
    return {
        "items": [content_json(c) for c in page.items],
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
        "content": content_json(info),
        "aliases": keep.aliases(info.digest),
        "placements": where,
        "pin": None if pin is None else {"note": pin.note, "created_at": pin.created_at},
    }
