"""Tables of record directories (created by the index migration ``0007_records``).

The tables are a catalog of the record directories stored in the keep, not their source
of truth: ``reindex`` rebuilds them from the stored directories, except the private
overlay (``hidden``, ``private``), which is local by design.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Index,
    PrimaryKeyConstraint,
    String,
    Table,
)
from sqlalchemy.dialects.postgresql import JSONB

from ..index.schema import DIGEST, metadata

# JSONB on PostgreSQL: a filter on a config value reads it without parsing the text again
JSON_VALUE = JSON().with_variant(JSONB(), "postgresql")

__all__ = ["records", "relations"]

records = Table(
    "records_records",
    metadata,
    Column("uuid", String(32), primary_key=True),
    Column("kind", String(255), nullable=False),
    Column("identity", DIGEST, nullable=False),
    # '' for none: a NULL would not take part in the unique index below
    Column("parent", String(32), nullable=False),
    Column("predicate", String(255), nullable=False),
    Column("config", JSON_VALUE, nullable=False),
    Column("label", String(255)),
    Column("created_at", Float, nullable=False),
    # the tree of the directory as last committed, and when; NULL until committed
    Column("tree", DIGEST),
    Column("updated_at", Float),
    Column("started_at", Float),
    Column("heartbeat_at", Float),
    Column("finished_at", Float),
    # the private overlay: this keep's own, never stored in the directory
    Column("hidden", Boolean, nullable=False, default=False),
    Column("private", JSON_VALUE),
    # one record per (parent, identity, predicate), however many create it at once
    Index("ux_records_identity", "parent", "identity", "predicate", unique=True),
    Index("ix_records_kind_created", "kind", "created_at", "uuid"),
)

relations = Table(
    "records_relations",
    metadata,
    Column("uuid", String(32), nullable=False),
    Column("name", String(255), nullable=False),
    Column("other", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("uuid", "name", "other"),
    Index("ix_records_relations_inverse", "other", "name"),
)
