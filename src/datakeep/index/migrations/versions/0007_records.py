"""Record directories: the catalog of records and their relations.

Revision ID: 0007_records
Revises: 0006_files
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON_VALUE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0007_records"
down_revision = "0006_files"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "records_records",
        sa.Column("uuid", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(255), nullable=False),
        sa.Column("identity", sa.String(160), nullable=False),
        sa.Column("parent", sa.String(32), nullable=False),
        sa.Column("predicate", sa.String(255), nullable=False),
        sa.Column("config", JSON_VALUE, nullable=False),
        sa.Column("label", sa.String(255)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("tree", sa.String(160)),
        sa.Column("updated_at", sa.Float),
        sa.Column("started_at", sa.Float),
        sa.Column("heartbeat_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("private", JSON_VALUE),
    )
    op.create_index(
        "ux_records_identity", "records_records", ["parent", "identity", "predicate"], unique=True
    )
    op.create_index("ix_records_kind_created", "records_records", ["kind", "created_at", "uuid"])
    op.create_table(
        "records_relations",
        sa.Column("uuid", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("other", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("uuid", "name", "other"),
    )
    op.create_index("ix_records_relations_inverse", "records_relations", ["other", "name"])


def downgrade() -> None:
    op.drop_table("records_relations")
    op.drop_table("records_records")
