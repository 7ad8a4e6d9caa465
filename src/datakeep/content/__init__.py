"""The content store: blobs named by their digest, stored once, verified on every read.

Where to look: :mod:`.store` ties it together (the put path), :mod:`.write` turns bytes,
streams and files into blobs, :mod:`.rows` records them in the index, :mod:`.catalog`
answers lookups, finds and tags, :mod:`.read` and :mod:`.verify` are the read path,
:mod:`.packs` the pack format for small blobs, :mod:`.pointers` where a blob is.
"""

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
from .read import write_new_file
from .store import ContentStore
from .verify import VerifiedReader, check_bytes, drain_verified, verify_file

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
    "Written",
    "check_bytes",
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
