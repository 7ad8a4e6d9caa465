"""The errors of workspaces, each in datakeep's one hierarchy::

InvalidInput (ValueError)
  AmbiguousSnapshot        a prefix names more than one snapshot (they are listed)
  UncommittedChanges       a restore or pull would overwrite changes not snapshotted
  LineageConsistencyError  a step would read data derived from two versions of one input
AlreadyExists
  TagInUse                 the tag names another snapshot
"""

from __future__ import annotations

from ..errors import AlreadyExists, InvalidInput

__all__ = ["AmbiguousSnapshot", "LineageConsistencyError", "TagInUse", "UncommittedChanges"]


class AmbiguousSnapshot(InvalidInput):
    """A hash prefix matches several snapshots."""


class UncommittedChanges(InvalidInput):
    """Files changed since the last snapshot would be overwritten (``force`` to allow)."""


class LineageConsistencyError(InvalidInput):
    """A step's inputs derive from different versions of the same data."""


class TagInUse(AlreadyExists):
    """A tag is unique within a workspace."""
