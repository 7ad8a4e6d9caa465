"""Aliases: other digests of a content (SHA-256, MD5), checked when it was put.

Revision ID: 0009_aliases
Revises: 0008_workspaces
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_aliases"
down_revision = "0008_workspaces"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aliases",
        sa.Column("alias", sa.String(160), nullable=False),
        sa.Column(
            "digest",
            sa.String(160),
            sa.ForeignKey("contents.digest", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("alias", "digest"),
    )
    op.create_index("ix_aliases_digest", "aliases", ["digest"])


def downgrade() -> None:
    op.drop_index("ix_aliases_digest", "aliases")
    op.drop_table("aliases")
