"""What a ``datakeep://`` path resolves to: a file (a stored blob) or a directory
(whose listing is read when asked for)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["DirNode", "FileNode", "Node"]


@dataclass(frozen=True, slots=True)
class FileNode:
    """A file: the content it holds."""

    digest: str
    size: int
    mode: int | None = None
    """Permission bits, for a file of a tree."""
    created: float | None = None
    """When the content (or the tree holding it) was first recorded."""

    def info(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = {
            "name": name,
            "size": self.size,
            "type": "file",
            "digest": self.digest,
        }
        if self.mode is not None:
            found["mode"] = self.mode
        if self.created is not None:
            found["created"] = self.created
        return found


@dataclass(frozen=True, slots=True)
class DirNode:
    """A directory; ``children`` lists it (name and node of each entry) when called."""

    children: Callable[[], Iterable[tuple[str, Node]]]
    digest: str | None = None
    """The tree it is the root of, if it is one."""
    created: float | None = None

    def info(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = {"name": name, "size": 0, "type": "directory"}
        if self.digest is not None:
            found["digest"] = self.digest
        if self.created is not None:
            found["created"] = self.created
        return found


Node = FileNode | DirNode
