"""Run records: projects, master jobs, execution jobs and records of data factories."""

from .models import (
    JOB_STATUSES,
    MASTER_JOB_STATUSES,
    RECORD_STATUSES,
    ExecutionJob,
    MasterJob,
    Project,
    Record,
)

__all__ = [
    "JOB_STATUSES",
    "MASTER_JOB_STATUSES",
    "RECORD_STATUSES",
    "ExecutionJob",
    "MasterJob",
    "Project",
    "Record",
]
