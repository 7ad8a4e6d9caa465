"""Run records: projects, master jobs, execution jobs and records of data factories."""

from .aio import AsyncRunStore
from .models import (
    JOB_STATUSES,
    MASTER_JOB_STATUSES,
    RECORD_STATUSES,
    ExecutionJob,
    MasterJob,
    Project,
    Record,
)
from .records import RecordPage
from .rows import COUNT_KEYS
from .store import RunStore

__all__ = [
    "COUNT_KEYS",
    "JOB_STATUSES",
    "MASTER_JOB_STATUSES",
    "RECORD_STATUSES",
    "AsyncRunStore",
    "ExecutionJob",
    "MasterJob",
    "Project",
    "Record",
    "RecordPage",
    "RunStore",
]
