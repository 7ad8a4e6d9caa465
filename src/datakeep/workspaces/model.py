"""What a workspace's calls return: resources, snapshots and changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ROLES", "Changes", "Resource", "Snapshot", "SourceChanges"]

ROLES = ("source-data", "intermediate-data", "results", "code")
"""Results are additive: kept per snapshot in a subdirectory, never restored."""


@dataclass(frozen=True, slots=True)
class Resource:
    name: str
    role: str
    path: Path
    """Where the resource is on this machine."""
    stored_path: str
    """As the workspace records it: relative to its root when inside it, or an S3 URL."""
    endpoint: str | None = None
    """The S3-compatible server of an ``s3://`` resource (None: AWS's own)."""

    @property
    def on_s3(self) -> bool:
        return self.stored_path.startswith("s3://")


@dataclass(frozen=True, slots=True)
class Snapshot:
    number: int
    """1 for the first snapshot of the workspace, in the order they were taken."""
    hash: str
    tags: tuple[str, ...]
    message: str
    created_at: float
    metrics: dict[str, Any]
    results_subdir: str | None
    trees: dict[str, str]
    """Resource name to the digest of its tree."""

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "hash": self.hash,
            "tags": list(self.tags),
            "message": self.message,
            "created_at": self.created_at,
            "metrics": self.metrics,
            "results_subdir": self.results_subdir,
            "trees": self.trees,
        }


@dataclass(slots=True)
class SourceChanges:
    """Files of one resource that differ between two states, by path."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def to_json(self) -> dict[str, list[str]]:
        return {"added": self.added, "changed": self.changed, "removed": self.removed}


Changes = dict[str, SourceChanges]
"""Resource name to its changes; only resources with changes appear."""
