"""Verified file stores: named, write-once files under a namespace (event, production, ...),
hash-checked on every fetch; the manifest is the index.

    from datakeep.files import FileStore
    store = FileStore.create("results", "O4 results")
    info = store.add_file("S230518h", "Prod0", "posterior.h5")   # {"file", "hash", "uuid", ...}
    path = store.fetch_file("S230518h", "Prod0", "posterior.h5", hash=info["hash"])
"""

from .aio import AsyncFileStore
from .errors import AlreadyPresent, HashError, NotAStoreError
from .manifest import FileEntry, Manifest
from .store import FileStore

__all__ = [
    "AlreadyPresent",
    "AsyncFileStore",
    "FileEntry",
    "FileStore",
    "HashError",
    "Manifest",
    "NotAStoreError",
]
