"""Finding records: by kind, label, parent, and configuration values at JSON paths
compared with eq, ne, lt, lte, gt or gte; keyset paging by creation time.

A path is validated (names of letters, digits, ``_`` and ``-`` joined by dots) and becomes
a bound JSON path expression, never text spliced into SQL, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select

from ..errors import InvalidInput
from ..index import IndexDatabase
from .schema import records

__all__ = ["RecordPage", "find_records"]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


@dataclass(frozen=True, slots=True)
class RecordPage:
    """One page of records; pass ``next`` as ``after`` for the following page."""

    items: list[Any]
    next: str | None


def _condition(path: str, test: Any) -> Any:
    parts = path.split(".")
    if not all(_NAME.match(p) for p in parts):
        raise InvalidInput(f"not a config path: {path!r} (names joined by dots)")
    op, value = test if isinstance(test, tuple) else ("eq", test)
    if op not in _OPS:
        raise InvalidInput(f"unknown comparison {op!r}: one of {', '.join(_OPS)}")
    element = records.c.config[tuple(parts)]
    if isinstance(value, bool):
        typed = element.as_boolean()
    elif isinstance(value, int | float):
        typed = element.as_float()
    elif isinstance(value, str):
        typed = element.as_string()
    else:
        raise InvalidInput(f"config {path} can be compared with a number, string or bool only")
    return _OPS[op](typed, value)


def find_records(
    db: IndexDatabase,
    kind: str | None = None,
    label: str | None = None,
    parent: str | None = None,
    config: Mapping[str, Any] | None = None,
    limit: int = 100,
    after: str | None = None,
    hidden: bool = False,
) -> tuple[list[Any], str | None]:
    """Rows of the records that match, oldest first, and the token of the next page."""
    if limit < 1:
        raise InvalidInput("limit must be at least 1")
    query = select(records)
    if not hidden:
        query = query.where(records.c.hidden.is_(False))
    if kind is not None:
        query = query.where(records.c.kind == kind)
    if label is not None:
        query = query.where(records.c.label == label)
    if parent is not None:
        query = query.where(records.c.parent == parent)
    for path, test in (config or {}).items():
        query = query.where(_condition(path, test))
    if after is not None:
        stamp, _, uuid = after.partition("/")
        try:
            created = float(stamp)
        except ValueError:
            raise InvalidInput(f"not a page token: {after!r}") from None
        query = query.where(
            or_(
                records.c.created_at > created,
                and_(records.c.created_at == created, records.c.uuid > uuid),
            )
        )
    query = query.order_by(records.c.created_at, records.c.uuid).limit(limit + 1)
    with db.read("finding records") as conn:
        rows = list(conn.execute(query).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (f"{rows[-1].created_at!r}/{rows[-1].uuid}" if more else None)
