"""The content store: blobs named by their digest, stored once, verified on every read.

Where to look: :mod:`.store` ties it together (the put path), :mod:`.write` turns bytes,
streams and files into blobs, :mod:`.rows` records them in the index, :mod:`.catalog`
answers lookups, finds and tags, :mod:`.read` and :mod:`.verify` are the read path,
:mod:`.packs` the pack format for small blobs, :mod:`.pointers` where a blob is.

The store itself (:mod:`.store`, :mod:`.read`) is imported on first use: the command
line's quick reader uses the models, pointers and verification without SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .model import (
    CHUNK,
    INLINE_KEY,
    INLINE_MAX,
    PACKED_MAX,
    PRIMARY,
    QUARANTINE,
    Content,
    LinkMode,
    Page,
    Problem,
    Router,
    Stored,
    VerifyReport,
    Written,
)
from .pointers import (
    digest_named_by,
    fanout_key,
    key_of_pointer,
    pointer_of,
    stored_as_file,
    tag_router,
)
from .verify import VerifiedReader, check_bytes, drain_verified, verify_file

if TYPE_CHECKING:
    from .read import creation_umask, write_new_file
    from .store import ContentStore

__all__ = [
    "CHUNK",
    "INLINE_KEY",
    "INLINE_MAX",
    "PACKED_MAX",
    "PRIMARY",
    "QUARANTINE",
    "Content",
    "ContentStore",
    "LinkMode",
    "Page",
    "Problem",
    "Router",
    "Stored",
    "VerifiedReader",
    "VerifyReport",
    "Written",
    "check_bytes",
    "creation_umask",
    "digest_named_by",
    "drain_verified",
    "fanout_key",
    "key_of_pointer",
    "pointer_of",
    "stored_as_file",
    "tag_router",
    "verify_file",
    "write_new_file",
]

_LAZY = {"ContentStore": "store", "creation_umask": "read", "write_new_file": "read"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
