"""Run records as rows: models to rows and back, payloads as bytes, and the checks and
small statements every part of the run store shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection, Row, func, select, update

from ..digest import parse_digest
from ..errors import InvalidInput, NotFound
from .convert import check_id, from_json, from_micros, to_json, to_micros
from .models import RECORD_STATUSES, ExecutionJob, MasterJob, Project, Record, check_status
from .schema import record_counts

__all__ = [
    "COUNT_KEYS",
    "MASTER_COUNT_COLUMNS",
    "MASTER_END_COUNTS",
    "RecordRow",
    "check_page",
    "checked_statuses",
    "count_by_status",
    "count_columns",
    "model_of",
    "payload_bytes",
    "record_row",
    "require",
    "update_one",
]

COUNT_KEYS = {
    "attempted_requests": "attempted_requests",
    "completed": "completed_record_count",
    "filtered": "filtered_record_count",
    "duplicate": "duplicate_record_count",
    "failed": "failed_record_count",
    "produced_outputs": "produced_outputs_count",
}
"""Keys accepted in an execution job's ``counts=`` and the columns they set."""

MASTER_COUNT_COLUMNS = tuple(
    COUNT_KEYS[k] for k in ("completed", "filtered", "duplicate", "failed")
)
"""The record counts a master job keeps."""


def checked_statuses(
    status_filter: Sequence[str] | None, allowed: tuple[str, ...]
) -> list[str] | None:
    if status_filter is None:
        return None
    if isinstance(status_filter, str):
        status_filter = [status_filter]
    return [check_status(s, allowed, "filter") for s in status_filter]


def check_page(limit: int, offset: int = 0) -> None:
    if limit < 1 or offset < 0:
        raise InvalidInput("limit must be at least 1 and offset at least 0")


_JSON_FIELDS = frozenset({"output_config", "summary", "run_config"})
M = TypeVar("M", Project, MasterJob, ExecutionJob, Record)


def model_of(cls: type[M], row: Row[Any]) -> M:
    """A model from its row: columns share the fields' names; JSON text and integer
    microseconds (``*_time``, ``*_at``) are converted back."""
    columns = row._mapping

    def value(name: str) -> Any:
        if name in _JSON_FIELDS:
            return from_json(columns[name])
        if name.endswith(("_time", "_at")):
            return from_micros(columns[name])
        return columns[name]

    return cls(**{f.name: value(f.name) for f in fields(cls)})


def payload_bytes(data: Mapping[str, Any]) -> bytes:
    """The stored form of a JSON payload: compact, key order kept."""
    if not isinstance(data, Mapping):
        raise InvalidInput(
            f"record data must be a JSON object (a mapping), not {type(data).__name__}"
        )
    text = to_json(dict(data), "record data")
    assert text is not None
    return text.encode()


class RecordRow(NamedTuple):
    """A checked record as its row (a tuple, so the driver's executemany takes it as is)."""

    record_uid: str
    job_id: str
    master_job_id: str
    status: str
    output_ref: str | None
    error_message: str | None
    created_at: int | None
    updated_at: int | None
    end_time: int | None


def record_row(record: Record) -> RecordRow:
    if record.output_ref is not None:
        parse_digest(record.output_ref)
    return RecordRow(
        check_id(record.record_uid, "record_uid"),
        check_id(record.job_id, "job_id"),
        check_id(record.master_job_id, "master_job_id"),
        check_status(record.status, RECORD_STATUSES, "record"),
        record.output_ref,
        record.error_message,
        to_micros(record.created_at, "created_at"),
        to_micros(record.updated_at, "updated_at"),
        to_micros(record.end_time, "end_time"),
    )


def require(conn: Connection, column: Any, value: str, what: str) -> None:
    if conn.execute(select(column).where(column == value)).first() is None:
        raise NotFound(f"no {what} {value!r}")


def update_one(
    conn: Connection, table: Any, key: Any, value: str, values: Mapping[str, Any], what: str
) -> None:
    if conn.execute(update(table).where(key == value).values(**values)).rowcount == 0:
        raise NotFound(f"no {what} {value!r}")


MASTER_END_COUNTS = ("completed", "filtered", "duplicate", "failed", "total")


def count_columns(counts: Mapping[str, int], allowed: Sequence[str]) -> dict[str, int]:
    unknown = set(counts) - set(allowed)
    if unknown:
        raise InvalidInput(f"unknown count(s) {sorted(unknown)}; use {sorted(allowed)}")
    for key, n in counts.items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise InvalidInput(f"count {key!r} must be a non-negative integer")
    return {COUNT_KEYS[k]: n for k, n in counts.items() if k in COUNT_KEYS}


def count_by_status(conn: Connection, where: Any) -> dict[str, int]:
    query = (
        select(record_counts.c.status, func.sum(record_counts.c.n))
        .where(where)
        .group_by(record_counts.c.status)
    )
    return {status: int(n) for status, n in conn.execute(query) if n}
