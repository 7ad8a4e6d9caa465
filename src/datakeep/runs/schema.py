"""Tables of run records (created by the index migration ``0003_runs``).

Timestamps are integer microseconds since the epoch, UTC: exact, sortable and the same on
SQLite and PostgreSQL. Records are paged by ``seq`` (keyset), which never shifts when
rows arrive, and counted through ``runs_record_counts``, kept exact in the same
transaction as every record write, so a count never scans a million rows.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ..index.schema import DIGEST, metadata

__all__ = [
    "execution_jobs",
    "master_jobs",
    "projects",
    "record_counts",
    "records",
    "request_configs",
]

ID = String(255)
STATUS = String(32)
MICROS = BigInteger
# an INTEGER PRIMARY KEY is SQLite's rowid: autoincrementing and the fastest key there is
SEQ = BigInteger().with_variant(Integer, "sqlite")


def _counts() -> list[Column[int]]:
    return [
        Column(name, BigInteger, nullable=False, default=0)
        for name in (
            "completed_record_count",
            "filtered_record_count",
            "duplicate_record_count",
            "failed_record_count",
        )
    ]


projects = Table(
    "runs_projects",
    metadata,
    Column("project_id", ID, primary_key=True),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("created_at", MICROS, nullable=False),
    Column("updated_at", MICROS, nullable=False),
)

request_configs = Table(
    "runs_request_configs",
    metadata,
    Column("ref", ID, primary_key=True),
    Column("digest", DIGEST, nullable=False),
)

master_jobs = Table(
    "runs_master_jobs",
    metadata,
    Column("master_job_id", ID, primary_key=True),
    Column("project_id", ID, ForeignKey("runs_projects.project_id"), nullable=False),
    Column("name", Text),
    Column("status", STATUS, nullable=False),
    Column("request_config_ref", ID),
    Column("output_config", Text),
    Column("summary", Text),
    Column("total_record_count", BigInteger, nullable=False, default=0),
    *_counts(),
    Column("creation_time", MICROS, nullable=False),
    Column("start_time", MICROS),
    Column("end_time", MICROS),
    Column("update_time", MICROS, nullable=False),
    # 0010_run_fields: what the factory was asked for and where it writes
    Column("target_record_count", BigInteger),
    Column("storage_uri", Text),
    Column("metadata_storage_uri_override", Text),
    Column("data_storage_uri_override", Text),
    Index("ix_runs_master_jobs_project", "project_id", "status", "creation_time"),
)

execution_jobs = Table(
    "runs_execution_jobs",
    metadata,
    Column("job_id", ID, primary_key=True),
    Column("master_job_id", ID, ForeignKey("runs_master_jobs.master_job_id"), nullable=False),
    Column("status", STATUS, nullable=False),
    Column("run_config", Text),
    Column("run_config_hash", String(128)),
    Column("worker_id", ID),
    Column("attempted_requests", BigInteger, nullable=False, default=0),
    *_counts(),
    Column("error_message", Text),
    Column("creation_time", MICROS, nullable=False),
    Column("start_time", MICROS),
    Column("end_time", MICROS),
    Column("update_time", MICROS, nullable=False),
    Column("produced_outputs_count", BigInteger, nullable=False, default=0, server_default="0"),
    Index("ix_runs_execution_jobs_master", "master_job_id", "status", "creation_time"),
    Index("ix_runs_execution_jobs_config", "run_config_hash", "status"),
    # the target of records' composite key: a record's job belongs to its master job
    UniqueConstraint("job_id", "master_job_id", name="uq_runs_execution_jobs_job_master"),
)

records = Table(
    "runs_records",
    metadata,
    Column("seq", SEQ, primary_key=True, autoincrement=True),
    Column("record_uid", ID, nullable=False, unique=True),
    Column("job_id", ID, nullable=False),
    Column("master_job_id", ID, nullable=False),
    Column("status", STATUS, nullable=False),
    Column("output_ref", DIGEST),
    Column("error_message", Text),
    Column("created_at", MICROS, nullable=False),
    Column("updated_at", MICROS, nullable=False),
    Column("end_time", MICROS),  # 0010_run_fields: when the record was finished
    Index("ix_runs_records_master", "master_job_id", "status", "seq"),
    Index("ix_runs_records_master_seq", "master_job_id", "seq"),
    Index("ix_runs_records_job", "job_id", "status", "seq"),
    ForeignKeyConstraint(
        ["job_id", "master_job_id"],
        ["runs_execution_jobs.job_id", "runs_execution_jobs.master_job_id"],
        name="fk_runs_records_job_master",
    ),
)

record_counts = Table(
    "runs_record_counts",
    metadata,
    Column("master_job_id", ID, nullable=False),
    Column("job_id", ID, nullable=False),
    Column("status", STATUS, nullable=False),
    Column("n", BigInteger, nullable=False),
    PrimaryKeyConstraint("master_job_id", "job_id", "status"),
)
