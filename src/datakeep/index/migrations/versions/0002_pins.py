"""Pins: explicit gc roots.

Revision ID: 0002_pins
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_pins"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pins",
        sa.Column(
            "digest",
            sa.String(160),
            sa.ForeignKey("contents.digest", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pins")
