"""Typed models of run records: projects, master jobs, execution jobs, records.

A data factory runs a *master job* per request; it fans out into *execution jobs* on
workers, each producing *records*. Timestamps are timezone-aware (UTC when read back);
JSON fields (configs, summaries) round-trip exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidInput

__all__ = [
    "JOB_STATUSES",
    "MASTER_JOB_STATUSES",
    "RECORD_STATUSES",
    "ExecutionJob",
    "MasterJob",
    "Project",
    "Record",
    "check_status",
    "utc_now",
]

MASTER_JOB_STATUSES = (
    "pending",
    "running",
    "completed",
    "failed",
    "completed_with_errors",
    "cancelled",
)
JOB_STATUSES = ("pending", "running", "completed", "duplicate", "filtered", "failed", "cancelled")
RECORD_STATUSES = JOB_STATUSES


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_status(status: str, allowed: tuple[str, ...], what: str) -> str:
    if status not in allowed:
        raise InvalidInput(f"{status!r} is not a {what} status; use one of {', '.join(allowed)}")
    return status


@dataclass(slots=True)
class Project:
    """A body of work that master jobs belong to."""

    project_id: str
    name: str
    description: str | None = None
    created_at: datetime = field(default_factory=utc_now)
    updated_at: datetime = field(default_factory=utc_now)


@dataclass(slots=True)
class MasterJob:
    """One request to the data factory, fanned out into execution jobs."""

    master_job_id: str
    project_id: str
    name: str | None = None
    status: str = "pending"
    """One of :data:`MASTER_JOB_STATUSES`."""
    request_config_ref: str | None = None
    """Reference returned by ``save_request_config``."""
    output_config: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    """Free-form JSON written at the end of the job."""
    total_record_count: int = 0
    completed_record_count: int = 0
    filtered_record_count: int = 0
    duplicate_record_count: int = 0
    failed_record_count: int = 0
    creation_time: datetime = field(default_factory=utc_now)
    start_time: datetime | None = None
    end_time: datetime | None = None
    update_time: datetime = field(default_factory=utc_now)
    target_record_count: int | None = None
    """How many records the request asked for."""
    storage_uri: str | None = None
    """Where the factory keeps this job's output, as it names it."""
    metadata_storage_uri_override: str | None = None
    data_storage_uri_override: str | None = None


@dataclass(slots=True)
class ExecutionJob:
    """One unit of work of a master job, run by one worker."""

    job_id: str
    master_job_id: str
    status: str = "pending"
    """One of :data:`JOB_STATUSES`."""
    run_config: dict[str, Any] | None = None
    run_config_hash: str | None = None
    """Finds the job again after a crash (``find_execution_jobs``)."""
    worker_id: str | None = None
    attempted_requests: int = 0
    completed_record_count: int = 0
    filtered_record_count: int = 0
    duplicate_record_count: int = 0
    failed_record_count: int = 0
    error_message: str | None = None
    creation_time: datetime = field(default_factory=utc_now)
    start_time: datetime | None = None
    end_time: datetime | None = None
    update_time: datetime = field(default_factory=utc_now)
    produced_outputs_count: int = 0


@dataclass(slots=True)
class Record:
    """One output of an execution job; its data lives in the keep as content."""

    record_uid: str
    job_id: str
    master_job_id: str
    status: str = "pending"
    """One of :data:`RECORD_STATUSES`."""
    output_ref: str | None = None
    """Reference returned by ``save_record_data``: a digest, never a path."""
    error_message: str | None = None
    created_at: datetime = field(default_factory=utc_now)
    updated_at: datetime = field(default_factory=utc_now)
    end_time: datetime | None = None
    """When the record was finished (``updated_at`` moves with every change)."""
