"""The index rows that record stored blobs, inserted idempotently in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, delete

from ..index import aliases, contents, inline_blobs, placements
from ..index import tags as tag_table
from ..index.upsert import insert_ignore, insert_or_update

__all__ = ["Execute", "IndexRows", "executor"]


Execute = Callable[[Any, Sequence[Mapping[str, Any]]], Sequence[Sequence[Any]]]
"""Executes a Core statement for some rows in an open write transaction; returns the rows
the statement returns (SQLAlchemy's connection and :class:`DirectConnection` both can)."""


@dataclass(frozen=True, slots=True)
class IndexRows:
    """The index rows that record some stored blobs, ready to insert."""

    kind: str
    created_at: float
    contents: list[dict[str, Any]]
    placements: list[dict[str, Any]]
    tags: list[dict[str, Any]]
    replace: bool = False
    """Point the primary placements at these blobs even where the index holds another
    copy (one found damaged): a repair, never a plain put."""
    aliases: list[dict[str, Any]] = field(default_factory=list)
    """Other digests of these contents, checked against their bytes (``alias``,
    ``digest``)."""

    def insert(self, dialect: str, execute: Execute) -> dict[str, float]:
        """Insert the rows (idempotent); the digests new to the index, with ``created_at``."""
        created: dict[str, float] = {}
        if self.kind == "tree":
            # the same bytes may have been stored as a plain blob before; a tree names
            # other contents, which gc must know
            execute(insert_or_update(dialect, contents, ["digest"], ["kind"]), self.contents)
        else:
            new = insert_ignore(dialect, contents, ["digest"], returning=["digest"])
            created = dict.fromkeys(
                (row[0] for row in execute(new, self.contents)), self.created_at
            )
        if self.replace:
            moved = insert_or_update(
                dialect, placements, ["digest", "location"], ["backend", "pointer"]
            )
            execute(moved, self.placements)
            # a copy kept in the index itself is replaced too, not left behind
            execute(
                delete(inline_blobs).where(inline_blobs.c.digest == bindparam("gone")),
                [{"gone": row["digest"]} for row in self.placements],
            )
        else:
            execute(insert_ignore(dialect, placements, ["digest", "location"]), self.placements)
        if self.tags:
            execute(insert_or_update(dialect, tag_table, ["digest", "key"], ["value"]), self.tags)
        if self.aliases:
            execute(insert_ignore(dialect, aliases, ["alias", "digest"]), self.aliases)
        return created


def executor(conn: Connection) -> Execute:
    def execute(statement: Any, rows: Sequence[Mapping[str, Any]]) -> Sequence[Sequence[Any]]:
        result = conn.execute(statement, rows)
        return result.all() if result.returns_rows else []

    return execute
