"""Run records: the fields a data factory keeps and reads back (a master job's target
and storage locations, an execution job's produced outputs, a record's end time).

Revision ID: 0010_run_fields
Revises: 0009_aliases
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_run_fields"
down_revision = "0009_aliases"
branch_labels = None
depends_on = None

_MASTER = ("storage_uri", "metadata_storage_uri_override", "data_storage_uri_override")


def upgrade() -> None:
    with op.batch_alter_table("runs_master_jobs") as table:
        table.add_column(sa.Column("target_record_count", sa.BigInteger))
        for name in _MASTER:
            table.add_column(sa.Column(name, sa.Text))
    with op.batch_alter_table("runs_execution_jobs") as table:
        table.add_column(
            sa.Column("produced_outputs_count", sa.BigInteger, nullable=False, server_default="0")
        )
    with op.batch_alter_table("runs_records") as table:
        table.add_column(sa.Column("end_time", sa.BigInteger))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite 3.35+): recreating a table that
    # others reference fails while foreign keys are enforced and rows exist
    with op.batch_alter_table("runs_records", recreate="never") as table:
        table.drop_column("end_time")
    with op.batch_alter_table("runs_execution_jobs", recreate="never") as table:
        table.drop_column("produced_outputs_count")
    with op.batch_alter_table("runs_master_jobs", recreate="never") as table:
        for name in reversed(_MASTER):
            table.drop_column(name)
        table.drop_column("target_record_count")
