"""Tables of workspaces (created by the index migration ``0008_workspaces``).

One row per resource, per snapshot, per tag and per lineage output: two people adding
resources or snapshotting into one shared index touch different rows, and the database's
keys (not a check before an insert) keep tags unique and snapshots single.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ..index.schema import DIGEST, metadata

__all__ = ["lineage", "resources", "s3_objects", "snapshot_trees", "snapshots", "tags"]

resources = Table(
    "ws_resources",
    metadata,
    Column("workspace", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("role", String(32), nullable=False),
    # relative to the workspace's root when inside it, else absolute; or s3://bucket/prefix
    Column("path", Text, nullable=False),
    Column("endpoint", Text),  # of an S3-compatible server, for an s3:// path
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("workspace", "name"),
)

snapshots = Table(
    "ws_snapshots",
    metadata,
    # the order snapshots were taken in, whoever took them: history numbers follow it
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workspace", String(255), nullable=False),
    Column("hash", DIGEST, nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("metrics", JSON, nullable=False),
    # where this snapshot's results went, relative to each results resource
    Column("results_subdir", Text),
    UniqueConstraint("workspace", "hash", name="ux_ws_snapshots_hash"),
)

snapshot_trees = Table(
    "ws_snapshot_trees",
    metadata,
    Column("workspace", String(255), nullable=False),
    Column("hash", DIGEST, nullable=False),
    Column("resource", String(255), nullable=False),
    Column("tree", DIGEST, nullable=False),
    PrimaryKeyConstraint("workspace", "hash", "resource"),
    ForeignKeyConstraint(
        ["workspace", "hash"], ["ws_snapshots.workspace", "ws_snapshots.hash"], ondelete="CASCADE"
    ),
)

tags = Table(
    "ws_tags",
    metadata,
    Column("workspace", String(255), nullable=False),
    Column("tag", String(255), nullable=False),
    Column("hash", DIGEST, nullable=False),
    # a tag names one snapshot of its workspace: the key refuses a second
    PrimaryKeyConstraint("workspace", "tag"),
    ForeignKeyConstraint(
        ["workspace", "hash"], ["ws_snapshots.workspace", "ws_snapshots.hash"], ondelete="CASCADE"
    ),
    Index("ix_ws_tags_hash", "workspace", "hash"),
)

lineage = Table(
    "ws_lineage",
    metadata,
    Column("workspace", String(255), nullable=False),
    # the output this entry explains: a resource, or resource/sub/path
    Column("ref", Text, nullable=False),
    Column("entry", JSON, nullable=False),
    PrimaryKeyConstraint("workspace", "ref"),
)

s3_objects = Table(
    "ws_s3_objects",
    metadata,
    # the digest of each object of an S3 resource as last read, by its entity tag: an
    # unchanged object is not downloaded again to learn what it holds
    Column("location", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("etag", Text, nullable=False),
    Column("digest", DIGEST, nullable=False),
    PrimaryKeyConstraint("location", "key"),
)
