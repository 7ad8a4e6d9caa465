"""Workspaces: resources, snapshots, their trees and tags, current lineage, and the
digests of S3 resources' objects.

Revision ID: 0008_workspaces
Revises: 0007_records
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_workspaces"
down_revision = "0007_records"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ws_resources",
        sa.Column("workspace", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("endpoint", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("workspace", "name"),
    )
    op.create_table(
        "ws_snapshots",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workspace", sa.String(255), nullable=False),
        sa.Column("hash", sa.String(160), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("results_subdir", sa.Text),
        sa.UniqueConstraint("workspace", "hash", name="ux_ws_snapshots_hash"),
    )
    op.create_table(
        "ws_snapshot_trees",
        sa.Column("workspace", sa.String(255), nullable=False),
        sa.Column("hash", sa.String(160), nullable=False),
        sa.Column("resource", sa.String(255), nullable=False),
        sa.Column("tree", sa.String(160), nullable=False),
        sa.PrimaryKeyConstraint("workspace", "hash", "resource"),
        sa.ForeignKeyConstraint(
            ["workspace", "hash"],
            ["ws_snapshots.workspace", "ws_snapshots.hash"],
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "ws_tags",
        sa.Column("workspace", sa.String(255), nullable=False),
        sa.Column("tag", sa.String(255), nullable=False),
        sa.Column("hash", sa.String(160), nullable=False),
        sa.PrimaryKeyConstraint("workspace", "tag"),
        sa.ForeignKeyConstraint(
            ["workspace", "hash"],
            ["ws_snapshots.workspace", "ws_snapshots.hash"],
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_ws_tags_hash", "ws_tags", ["workspace", "hash"])
    op.create_table(
        "ws_lineage",
        sa.Column("workspace", sa.String(255), nullable=False),
        sa.Column("ref", sa.Text, nullable=False),
        sa.Column("entry", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("workspace", "ref"),
    )
    op.create_table(
        "ws_s3_objects",
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("etag", sa.Text, nullable=False),
        sa.Column("digest", sa.String(160), nullable=False),
        sa.PrimaryKeyConstraint("location", "key"),
    )


def downgrade() -> None:
    op.drop_table("ws_s3_objects")
    op.drop_table("ws_lineage")
    op.drop_table("ws_tags")
    op.drop_table("ws_snapshot_trees")
    op.drop_table("ws_snapshots")
    op.drop_table("ws_resources")
