"""The one error hierarchy of datakeep.

Every error datakeep raises derives from :class:`DatakeepError` and also from the builtin
exception a Python caller would expect, so ``except FileNotFoundError`` and
``except KeyError`` both catch a missing blob::

    DatakeepError
    ├── NotFound                 (FileNotFoundError, KeyError)  no such content, key or keep
    ├── AlreadyExists            (FileExistsError)              create-only target exists
    ├── InvalidInput             (ValueError)                   the caller asked for something wrong
    │   ├── InvalidDigest                                       not ``algorithm:hex``
    │   ├── UnknownAlgorithm                                    not blake3, sha256 or md5
    │   ├── UnknownBackend                                      no backend has that permanent name
    │   └── InvalidPath                                         ``..``, absolute, escaping symlink
    ├── IntegrityError           (OSError)                      stored bytes differ from digest
    ├── StorageError             (OSError)                      a backend could not read or write
    │   └── LinkUnsupported                                     no hard link or reflink here
    └── IndexFailure             (OSError)                      the index database failed
        ├── Busy                 (TimeoutError)                 a lock wait ran out of time
        └── SchemaTooNew                                        index written by a newer datakeep

Driver errors (sqlite3, SQLAlchemy, OS errors of the blob store) are translated where
they arise: :mod:`datakeep.index.engine` for the database, the backends for bytes.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "Busy",
    "DatakeepError",
    "IndexFailure",
    "IntegrityError",
    "InvalidDigest",
    "InvalidInput",
    "InvalidPath",
    "LinkUnsupported",
    "NotFound",
    "SchemaTooNew",
    "StorageError",
    "UnknownAlgorithm",
    "UnknownBackend",
]


class DatakeepError(Exception):
    """Base of every error datakeep raises."""

    def __str__(self) -> str:
        # KeyError quotes its message and OSError formats errno; show the plain message.
        return " ".join(str(a) for a in self.args) if self.args else type(self).__name__


class NotFound(DatakeepError, FileNotFoundError, KeyError):
    """The content, key, path or keep does not exist."""


class AlreadyExists(DatakeepError, FileExistsError):
    """A create-only target already exists."""


class InvalidInput(DatakeepError, ValueError):
    """The caller passed something datakeep cannot accept; nothing was changed."""


class InvalidDigest(InvalidInput):
    """A digest is not of the form ``algorithm:hex`` with the right length."""


class UnknownAlgorithm(InvalidInput):
    """A hash algorithm datakeep does not provide."""


class UnknownBackend(InvalidInput):
    """No registered backend has this permanent name."""


class InvalidPath(InvalidInput):
    """A path is absolute, contains ``..``, escapes its root or has an unsupported type."""


class IntegrityError(DatakeepError, OSError):
    """Stored bytes do not match their digest (corrupted or truncated)."""


class StorageError(DatakeepError, OSError):
    """A blob backend failed to read or write (disk full, permission denied, ...)."""


class LinkUnsupported(StorageError):
    """A hard link or reflink was asked for where the filesystem cannot make one."""


class IndexFailure(DatakeepError, OSError):
    """The index database failed."""


class Busy(IndexFailure, TimeoutError):
    """The index stayed locked by other writers for longer than the lock timeout."""


class SchemaTooNew(IndexFailure):
    """The index was written by a newer datakeep whose schema this version does not know."""
