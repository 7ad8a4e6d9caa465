"""Tables of verified file stores (created by the index migration ``0006_files``).

The manifest is these rows, not a file rewritten whole: every handle, thread and process
sees the same store at once, and a name is write-once because the database says so (a
unique constraint), never because a cached copy of the manifest did.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, ForeignKey, Index, String, Table, Text

from ..index.schema import DIGEST, metadata

__all__ = ["entries", "stores"]

stores = Table(
    "files_stores",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("created_at", Float, nullable=False),
)

# one row per stored file: its place (store, namespace, name), its uuid, and its content
# with every hash recorded when it was added
entries = Table(
    "files_entries",
    metadata,
    Column("uuid", String(32), primary_key=True),
    Column("store", String(255), ForeignKey("files_stores.name"), nullable=False),
    # the namespace parts (event, production, ...) joined by '/'; no part holds a '/'
    Column("namespace", Text, nullable=False),
    Column("name", String(255), nullable=False),
    # no foreign key: fsck --repair-index may forget a content whose blob is gone; the
    # entry stays, its fetch says why, and a pull or a re-add brings the content back
    Column("digest", DIGEST, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("md5", String(32), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ux_files_entries_place", "store", "namespace", "name", unique=True),
    Index("ix_files_entries_digest", "digest"),
)
