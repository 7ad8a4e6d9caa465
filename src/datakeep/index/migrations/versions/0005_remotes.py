"""Remotes: other places that hold copies of the keep's blobs.

Revision ID: 0005_remotes
Revises: 0004_inline_blobs
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_remotes"
down_revision = "0004_inline_blobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "remotes",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("remotes")
