"""Verified file stores: named, write-once files per namespace.

Revision ID: 0006_files
Revises: 0005_remotes
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_files"
down_revision = "0005_remotes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "files_stores",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "files_entries",
        sa.Column("uuid", sa.String(32), primary_key=True),
        sa.Column("store", sa.String(255), sa.ForeignKey("files_stores.name"), nullable=False),
        sa.Column("namespace", sa.Text, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("digest", sa.String(160), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("md5", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index(
        "ux_files_entries_place", "files_entries", ["store", "namespace", "name"], unique=True
    )
    op.create_index("ix_files_entries_digest", "files_entries", ["digest"])


def downgrade() -> None:
    op.drop_table("files_entries")
    op.drop_table("files_stores")
