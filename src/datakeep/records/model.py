"""What the catalog knows of one record, and its run state."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

__all__ = ["DIED_AFTER_S", "RecordInfo", "info_of"]

DIED_AFTER_S = 90.0
"""A running record whose heartbeat is older than this reads as died."""


@dataclass(frozen=True, slots=True)
class RecordInfo:
    """What the catalog knows of one record."""

    uuid: str
    kind: str
    identity: str
    parent: str | None
    predicate: str
    config: Any
    label: str | None
    created_at: float
    tree: str | None = None
    """The tree of the directory as last committed; None until committed."""
    updated_at: float | None = None
    started_at: float | None = None
    heartbeat_at: float | None = None
    finished_at: float | None = None

    @property
    def state(self) -> str:
        """``created``, ``running``, ``died`` (no heartbeat for 90 s) or ``finished``."""
        if self.finished_at is not None:
            return "finished"
        if self.started_at is None:
            return "created"
        last = self.heartbeat_at or self.started_at
        return "died" if time.time() - last > DIED_AFTER_S else "running"


def info_of(row: Any) -> RecordInfo:
    return RecordInfo(
        row.uuid,
        row.kind,
        row.identity,
        row.parent or None,
        row.predicate,
        row.config,
        row.label,
        row.created_at,
        row.tree,
        row.updated_at,
        row.started_at,
        row.heartbeat_at,
        row.finished_at,
    )
