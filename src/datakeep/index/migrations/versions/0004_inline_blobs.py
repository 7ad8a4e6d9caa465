"""Inline blobs: small contents kept in the index.

Revision ID: 0004_inline_blobs
Revises: 0003_runs
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_inline_blobs"
down_revision = "0003_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inline_blobs",
        sa.Column(
            "digest",
            sa.String(160),
            sa.ForeignKey("contents.digest", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("inline_blobs")
