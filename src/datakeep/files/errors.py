"""The errors of file stores, each in datakeep's one hierarchy::

AlreadyExists (FileExistsError)
  AlreadyPresent          the name is taken in its namespace (write-once)
NotFound (FileNotFoundError, KeyError)
  NotAStoreError          the path or keep holds no such store
IntegrityError (OSError)
  HashError               a fetched file does not match a recorded or given hash
"""

from __future__ import annotations

from ..errors import AlreadyExists, IntegrityError, NotFound

__all__ = ["AlreadyPresent", "HashError", "NotAStoreError"]


class AlreadyPresent(AlreadyExists):
    """A file of that name is in that namespace already; stored files are never replaced."""


class NotAStoreError(NotFound):
    """There is no file store there."""


class HashError(IntegrityError):
    """A file's bytes do not match a hash recorded for it or given by the caller."""
