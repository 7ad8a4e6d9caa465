"""Keyset paging of run listings, in either direction, with opaque page tokens.

A page ends with the sort key of its last row; the token carries that key (and the
order it belongs to), and the next page starts strictly after it. Rows that arrive
meanwhile never shift a page, as an offset would, and no page scans what came before.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Column, Row, Select, tuple_

from ..errors import InvalidInput
from ..index import IndexDatabase

__all__ = ["Page", "check_order", "page_of", "pages"]

T = TypeVar("T")


class Page(list[T], Generic[T]):
    """A list of models with ``next``: the token of the following page (None: the last)."""

    next: str | None

    def __init__(self, items: Sequence[T] = (), next: str | None = None) -> None:
        super().__init__(items)
        self.next = next

    @property
    def items(self) -> list[T]:
        return list(self)


def check_order(order: str, allowed: tuple[str, ...]) -> str:
    if order not in allowed:
        raise InvalidInput(f"order {order!r} is none of {', '.join(allowed)}")
    return order


def _token(order: str, key: Sequence[Any]) -> str:
    text = json.dumps([order, list(key)], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _key_after(token: str, order: str, width: int) -> list[Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        kept_order, key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{token!r} is not a page token of this listing") from exc
    if kept_order != order or not isinstance(key, list) or len(key) != width:
        raise InvalidInput(f"page token {token!r} belongs to another listing order")
    return key


def page_of(
    db: IndexDatabase,
    query: Select[Any],
    key: Sequence[Column[Any]],
    order: str,
    descending: bool,
    limit: int,
    after: str | None,
    make: Callable[[Row[Any]], T],
) -> Page[T]:
    """One page of ``query`` sorted by ``key`` (unique), after the token ``after``."""
    if limit < 1:
        raise InvalidInput("limit must be at least 1 (or None for everything)")
    if after is not None:
        start = _key_after(after, order, len(key))
        row_key = tuple_(*key)
        query = query.where(row_key < tuple_(*start) if descending else row_key > tuple_(*start))
    ordering = [c.desc() if descending else c.asc() for c in key]
    with db.read("listing run records") as conn:
        rows = conn.execute(query.order_by(*ordering).limit(limit + 1)).all()
    next_token = None
    if len(rows) > limit:
        last = rows[limit - 1]._mapping
        next_token = _token(order, [last[c.name] for c in key])
    return Page([make(r) for r in rows[:limit]], next_token)


def pages(fetch: Callable[[str | None], Page[T]], after: str | None = None) -> Iterator[T]:
    """Every item of a listing after ``after``, fetching page after page as it is iterated."""
    while True:
        page = fetch(after)
        yield from page
        if page.next is None:
            return
        after = page.next
