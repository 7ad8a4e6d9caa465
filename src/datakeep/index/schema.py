"""The index schema (SQLAlchemy Core). Migrations in ``migrations/versions`` create it.

The index is the source of truth for names and metadata; blobs are the truth for bytes.
A row in ``placements`` is only ever written after its blob is stored, so a row never
points at a missing blob.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

__all__ = [
    "aliases",
    "contents",
    "inline_blobs",
    "keep_meta",
    "metadata",
    "pins",
    "placements",
    "remotes",
    "tags",
]

metadata = MetaData()

DIGEST = String(160)

contents = Table(
    "contents",
    metadata,
    Column("digest", DIGEST, primary_key=True),
    Column("size", BigInteger, nullable=False),
    # 'blob' or 'tree': a tree's bytes are a manifest that names other contents
    Column("kind", String(8), nullable=False),
    Column("created_at", Float, nullable=False),
)

placements = Table(
    "placements",
    metadata,
    Column("digest", DIGEST, ForeignKey("contents.digest", ondelete="CASCADE"), nullable=False),
    # 'primary' for the keep's durable home; later, a remote's name
    Column("location", String(64), nullable=False),
    # the permanent backend name that wrote it, e.g. datakeep.local@v1
    Column("backend", String(64), nullable=False),
    # JSON, relative to the backend's root, so a moved directory stays readable
    Column("pointer", Text, nullable=False),
    PrimaryKeyConstraint("digest", "location"),
)

tags = Table(
    "tags",
    metadata,
    Column("digest", DIGEST, ForeignKey("contents.digest", ondelete="CASCADE"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("digest", "key"),
    Index("ix_tags_key_value_digest", "key", "value", "digest"),
)

# small contents kept in the index itself (their placement's key is INLINE_KEY): one row
# instead of one file, for payloads such as run records' JSON
inline_blobs = Table(
    "inline_blobs",
    metadata,
    Column("digest", DIGEST, ForeignKey("contents.digest", ondelete="CASCADE"), primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

# other names of contents, each checked against the bytes when it was given
# (``put(data, expect="sha256:...")``); several contents may share an alias only through a
# hash collision (MD5), which a lookup by that alias reports instead of choosing. A row
# goes with its content (ON DELETE CASCADE): an alias never outlives what it names.
aliases = Table(
    "aliases",
    metadata,
    Column("alias", DIGEST, nullable=False),
    Column("digest", DIGEST, ForeignKey("contents.digest", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("alias", "digest"),
    # the cascade from a swept content finds its aliases through this
    Index("ix_aliases_digest", "digest"),
)

# explicit gc roots: pinned content is live with everything a pinned tree names
pins = Table(
    "pins",
    metadata,
    Column("digest", DIGEST, ForeignKey("contents.digest", ondelete="CASCADE"), primary_key=True),
    Column("note", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

# other places that hold copies: another directory or a bucket; their placements rows
# (location = the remote's name) are the inventory of what each holds
remotes = Table(
    "remotes",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("backend", String(64), nullable=False),
    Column("config", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

keep_meta = Table(
    "keep_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
