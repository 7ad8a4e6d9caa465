"""Run records: projects, request configs, master jobs, execution jobs, records, counts.

Revision ID: 0003_runs
Revises: 0002_pins
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_runs"
down_revision = "0002_pins"
branch_labels = None
depends_on = None

ID = sa.String(255)
STATUS = sa.String(32)
DIGEST = sa.String(160)


def _counts() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column(name, sa.BigInteger, nullable=False)
        for name in (
            "completed_record_count",
            "filtered_record_count",
            "duplicate_record_count",
            "failed_record_count",
        )
    ]


def _times() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.Column("start_time", sa.BigInteger),
        sa.Column("end_time", sa.BigInteger),
        sa.Column("update_time", sa.BigInteger, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "runs_projects",
        sa.Column("project_id", ID, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "runs_request_configs",
        sa.Column("ref", ID, primary_key=True),
        sa.Column("digest", DIGEST, nullable=False),
    )
    op.create_table(
        "runs_master_jobs",
        sa.Column("master_job_id", ID, primary_key=True),
        sa.Column("project_id", ID, sa.ForeignKey("runs_projects.project_id"), nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("request_config_ref", ID),
        sa.Column("output_config", sa.Text),
        sa.Column("summary", sa.Text),
        sa.Column("total_record_count", sa.BigInteger, nullable=False),
        *_counts(),
        *_times(),
    )
    op.create_index(
        "ix_runs_master_jobs_project",
        "runs_master_jobs",
        ["project_id", "status", "creation_time"],
    )
    op.create_table(
        "runs_execution_jobs",
        sa.Column("job_id", ID, primary_key=True),
        sa.Column(
            "master_job_id",
            ID,
            sa.ForeignKey("runs_master_jobs.master_job_id"),
            nullable=False,
        ),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("run_config", sa.Text),
        sa.Column("run_config_hash", sa.String(128)),
        sa.Column("worker_id", ID),
        sa.Column("attempted_requests", sa.BigInteger, nullable=False),
        *_counts(),
        sa.Column("error_message", sa.Text),
        *_times(),
        sa.UniqueConstraint("job_id", "master_job_id", name="uq_runs_execution_jobs_job_master"),
    )
    op.create_index(
        "ix_runs_execution_jobs_master",
        "runs_execution_jobs",
        ["master_job_id", "status", "creation_time"],
    )
    op.create_index(
        "ix_runs_execution_jobs_config", "runs_execution_jobs", ["run_config_hash", "status"]
    )
    op.create_table(
        "runs_records",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("record_uid", ID, nullable=False, unique=True),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("master_job_id", ID, nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("output_ref", DIGEST),
        sa.Column("error_message", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id", "master_job_id"],
            ["runs_execution_jobs.job_id", "runs_execution_jobs.master_job_id"],
            name="fk_runs_records_job_master",
        ),
    )
    op.create_index("ix_runs_records_master", "runs_records", ["master_job_id", "status", "seq"])
    op.create_index("ix_runs_records_master_seq", "runs_records", ["master_job_id", "seq"])
    op.create_index("ix_runs_records_job", "runs_records", ["job_id", "status", "seq"])
    op.create_table(
        "runs_record_counts",
        sa.Column("master_job_id", ID, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("master_job_id", "job_id", "status"),
    )


def downgrade() -> None:
    for table in (
        "runs_record_counts",
        "runs_records",
        "runs_execution_jobs",
        "runs_master_jobs",
        "runs_request_configs",
        "runs_projects",
    ):
        op.drop_table(table)
