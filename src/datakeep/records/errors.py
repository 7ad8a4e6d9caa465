"""The errors of record stores, each in datakeep's one hierarchy::

InvalidPath (ValueError)
  UnsafePath        a relative path would leave its record directory
IntegrityError (OSError)
  IndexCollision    one identity, two different records
"""

from __future__ import annotations

from ..errors import IntegrityError, InvalidPath

__all__ = ["IndexCollision", "UnsafePath"]


class UnsafePath(InvalidPath):
    """``..``, an absolute path, a NUL or a symbolic link out of the record directory."""


class IndexCollision(IntegrityError):
    """Two records with different kinds or configurations share an identity."""
