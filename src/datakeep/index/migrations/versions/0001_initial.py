"""The foundation: contents, placements, tags, keep_meta.

Revision ID: 0001_initial
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

DIGEST = sa.String(160)


def upgrade() -> None:
    op.create_table(
        "contents",
        sa.Column("digest", DIGEST, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "placements",
        sa.Column(
            "digest", DIGEST, sa.ForeignKey("contents.digest", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("pointer", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("digest", "location"),
    )
    op.create_table(
        "tags",
        sa.Column(
            "digest", DIGEST, sa.ForeignKey("contents.digest", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("digest", "key"),
    )
    op.create_index("ix_tags_key_value_digest", "tags", ["key", "value", "digest"])
    op.create_table(
        "keep_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("keep_meta")
    op.drop_index("ix_tags_key_value_digest", "tags")
    op.drop_table("tags")
    op.drop_table("placements")
    op.drop_table("contents")
