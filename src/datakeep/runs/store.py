"""RunStore: projects, master jobs, execution jobs and records in a keep's index.

Every write is an upsert or a guarded update, never delete-then-insert: re-logging a job's
start or re-saving a project leaves what hangs off it intact. Record counts per
(master job, job, status) are kept exact in the same transaction as every record write,
so counting a million records reads a handful of rows. Payloads (request configs, record
data) are content in the keep: deduplicated, verified on read, referenced by digest,
which is portable (no path) and cannot name anything outside the keep.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection, Row, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from ..content import INLINE_MAX
from ..digest import parse_digest
from ..errors import IndexFailure, InvalidInput, NotFound
from ..index.upsert import insert_ignore, insert_or_add, insert_or_update
from ..keep import Keep
from .convert import check_id, from_json, from_micros, to_json, to_micros
from .models import (
    JOB_STATUSES,
    MASTER_JOB_STATUSES,
    RECORD_STATUSES,
    ExecutionJob,
    MasterJob,
    Project,
    Record,
    check_status,
    utc_now,
)
from .schema import execution_jobs, master_jobs, projects, record_counts, records, request_configs

__all__ = ["COUNT_KEYS", "RecordPage", "RunStore", "payload_bytes"]

COUNT_KEYS = {
    "attempted_requests": "attempted_requests",
    "completed": "completed_record_count",
    "filtered": "filtered_record_count",
    "duplicate": "duplicate_record_count",
    "failed": "failed_record_count",
}
"""Keys accepted in ``counts=`` and the columns they set."""


@dataclass(frozen=True, slots=True)
class RecordPage:
    """One page of records; pass ``next`` as ``after`` for the following page."""

    items: list[Record]
    next: int | None


def _statuses(status_filter: Sequence[str] | None, allowed: tuple[str, ...]) -> list[str] | None:
    if status_filter is None:
        return None
    if isinstance(status_filter, str):
        status_filter = [status_filter]
    return [check_status(s, allowed, "filter") for s in status_filter]


def _page(limit: int, offset: int = 0) -> None:
    if limit < 1 or offset < 0:
        raise InvalidInput("limit must be at least 1 and offset at least 0")


class RunStore:
    """Run records of data-generation pipelines, kept in a keep's index."""

    def __init__(self, keep: Keep, owns_keep: bool = False) -> None:
        self.keep = keep
        self.db = keep.db
        self._owns_keep = owns_keep
        self._closed = False

    @classmethod
    def open(cls, path: str | os.PathLike[str] = ".") -> RunStore:
        """Open the keep holding ``path`` and its run records (closed with the store)."""
        import datakeep

        return cls(datakeep.open(path), owns_keep=True)

    # -- lifecycle -------------------------------------------------------------------------
    def setup(self) -> None:
        """Make sure the tables exist (opening the keep migrated them); idempotent."""
        if self._closed:
            raise InvalidInput("this run store is closed")

    def close(self) -> None:
        """Release the keep if this store opened it; idempotent."""
        if not self._closed and self._owns_keep:
            self.keep.close()
        self._closed = True

    def __enter__(self) -> RunStore:
        self.setup()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- payloads ---------------------------------------------------------------------------
    def request_config_ref(self, master_job_id: str) -> str:
        """The reference under which a master job's request config is saved."""
        return f"request-config/{check_id(master_job_id, 'master_job_id')}"

    def save_request_config(self, config_ref: str, config: Mapping[str, Any]) -> str:
        """Store a request config (as verified content) under ``config_ref``."""
        check_id(config_ref, "config_ref")
        digest = self._storepayload_bytes(payload_bytes(config))
        row = {"ref": config_ref, "digest": digest}
        self.db.transact(
            "saving a request config",
            lambda c: c.execute(insert_or_update(c, request_configs, ["ref"], ["digest"]), [row]),
        )
        return config_ref

    def get_request_config(self, config_ref: str) -> dict[str, Any]:
        query = select(request_configs.c.digest).where(request_configs.c.ref == config_ref)
        with self.db.read("reading a request config") as conn:
            digest = conn.execute(query).scalar()
        if digest is None:
            raise NotFound(f"no request config {config_ref!r}")
        return dict(from_json(self.keep.get(digest).decode()))

    def save_record_data(
        self, record_uid: str, master_job_id: str, job_id: str, data: Mapping[str, Any]
    ) -> str:
        """Store a record's JSON payload; returns its reference (a digest) for ``output_ref``.

        Until a record row names it, the payload is protected from gc only by the grace
        period; ``log_records(batch, data=...)`` stores payloads and rows together instead.
        """
        check_id(record_uid, "record_uid")
        return self._storepayload_bytes(payload_bytes(data))

    def _storepayload_bytes(self, blob: bytes) -> str:
        """A payload's digest: a small one is kept in the index, a larger one as a file."""
        if len(blob) > INLINE_MAX:
            return self.keep.put(blob).digest
        return self.keep.store.put_inline([blob])[0]

    def get_record_data(self, output_ref: str) -> dict[str, Any]:
        """The payload behind a reference, verified; refuses anything but a digest."""
        digest = str(parse_digest(output_ref))
        return dict(from_json(self.keep.get(digest).decode()))

    # -- projects ---------------------------------------------------------------------------
    def save_project(self, project: Project) -> None:
        """Create or update a project in place; its master jobs are untouched."""
        row = {
            "project_id": check_id(project.project_id, "project_id"),
            "name": project.name,
            "description": project.description,
            "created_at": to_micros(project.created_at, "created_at"),
            "updated_at": to_micros(project.updated_at, "updated_at"),
        }
        stmt_keys = ["name", "description", "updated_at"]
        self.db.transact(
            "saving a project",
            lambda c: c.execute(insert_or_update(c, projects, ["project_id"], stmt_keys), [row]),
        )

    def get_project(self, project_id: str) -> Project | None:
        with self.db.read("reading a project") as conn:
            row = conn.execute(select(projects).where(projects.c.project_id == project_id)).first()
        return None if row is None else _model(Project, row)

    def list_projects(self, limit: int = 100, offset: int = 0) -> list[Project]:
        _page(limit, offset)
        query = (
            select(projects)
            .order_by(projects.c.created_at, projects.c.project_id)
            .limit(limit)
            .offset(offset)
        )
        with self.db.read("listing projects") as conn:
            return [_model(Project, r) for r in conn.execute(query)]

    # -- master jobs ------------------------------------------------------------------------
    def log_master_job_start(self, job: MasterJob) -> None:
        """Record that a master job started (again): an upsert that keeps its counts and
        everything that hangs off it."""
        check_status(job.status, MASTER_JOB_STATUSES, "master job")
        row = {
            "master_job_id": check_id(job.master_job_id, "master_job_id"),
            "project_id": check_id(job.project_id, "project_id"),
            "name": job.name,
            "status": job.status,
            "request_config_ref": job.request_config_ref,
            "output_config": to_json(job.output_config, "output_config"),
            "summary": to_json(job.summary, "summary"),
            "total_record_count": job.total_record_count,
            **{column: getattr(job, column) for column in list(COUNT_KEYS.values())[1:]},
            "creation_time": to_micros(job.creation_time, "creation_time"),
            "start_time": to_micros(job.start_time or utc_now(), "start_time"),
            "end_time": to_micros(job.end_time, "end_time"),
            "update_time": to_micros(job.update_time, "update_time"),
        }
        changed = ["name", "status", "request_config_ref", "output_config", "start_time"]

        def run(conn: Connection) -> None:
            _require(conn, projects.c.project_id, job.project_id, "project")
            conn.execute(
                insert_or_update(conn, master_jobs, ["master_job_id"], [*changed, "update_time"]),
                [row],
            )

        self.db.transact("logging a master job start", run)

    def log_master_job_end(
        self,
        master_job_id: str,
        final_status: str,
        summary: Mapping[str, Any] | None = None,
        end_time: datetime | None = None,
        update_time: datetime | None = None,
        counts: Mapping[str, int] | None = None,
    ) -> None:
        """Record the end of a master job. Without ``counts``, its record counts are taken
        from the records logged (exact)."""
        check_status(final_status, MASTER_JOB_STATUSES, "master job")
        values: dict[str, Any] = {
            "status": final_status,
            "summary": to_json(None if summary is None else dict(summary), "summary"),
            "end_time": to_micros(end_time or utc_now(), "end_time"),
            "update_time": to_micros(update_time or utc_now(), "update_time"),
        }

        def run(conn: Connection) -> None:
            if counts is None:
                by_status = _count(conn, record_counts.c.master_job_id == master_job_id)
                values["total_record_count"] = sum(by_status.values())
                for key in ("completed", "filtered", "duplicate", "failed"):
                    values[COUNT_KEYS[key]] = by_status.get(key, 0)
            else:
                values.update(_count_columns(counts, MASTER_END_COUNTS))
                values["total_record_count"] = counts.get("total", sum(counts.values()))
            _update_one(
                conn, master_jobs, master_jobs.c.master_job_id, master_job_id, values, "master job"
            )

        self.db.transact("logging a master job end", run)

    def update_master_job_status(
        self, master_job_id: str, status: str, update_time: datetime | None = None
    ) -> None:
        check_status(status, MASTER_JOB_STATUSES, "master job")
        values = {
            "status": status,
            "update_time": to_micros(update_time or utc_now(), "update_time"),
        }
        self.db.transact(
            "updating a master job",
            lambda c: _update_one(
                c, master_jobs, master_jobs.c.master_job_id, master_job_id, values, "master job"
            ),
        )

    def get_master_job(self, master_job_id: str) -> MasterJob | None:
        query = select(master_jobs).where(master_jobs.c.master_job_id == master_job_id)
        with self.db.read("reading a master job") as conn:
            row = conn.execute(query).first()
        return None if row is None else _model(MasterJob, row)

    def list_master_jobs(
        self,
        project_id: str | None = None,
        status_filter: Sequence[str] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[MasterJob]:
        _page(limit, offset)
        query = select(master_jobs)
        if project_id is not None:
            query = query.where(master_jobs.c.project_id == project_id)
        statuses = _statuses(status_filter, MASTER_JOB_STATUSES)
        if statuses is not None:
            query = query.where(master_jobs.c.status.in_(statuses))
        query = query.order_by(master_jobs.c.creation_time, master_jobs.c.master_job_id)
        query = query.limit(limit).offset(offset)
        with self.db.read("listing master jobs") as conn:
            return [_model(MasterJob, r) for r in conn.execute(query)]

    # -- execution jobs ---------------------------------------------------------------------
    def log_execution_job_start(self, job: ExecutionJob) -> None:
        """Record that an execution job started (again): an upsert; its records and
        counts stay as they are."""
        check_status(job.status, JOB_STATUSES, "execution job")
        row = {
            "job_id": check_id(job.job_id, "job_id"),
            "master_job_id": check_id(job.master_job_id, "master_job_id"),
            "status": job.status,
            "run_config": to_json(job.run_config, "run_config"),
            "run_config_hash": job.run_config_hash,
            "worker_id": job.worker_id,
            **{column: getattr(job, column) for column in COUNT_KEYS.values()},
            "error_message": job.error_message,
            "creation_time": to_micros(job.creation_time, "creation_time"),
            "start_time": to_micros(job.start_time or utc_now(), "start_time"),
            "end_time": to_micros(job.end_time, "end_time"),
            "update_time": to_micros(job.update_time, "update_time"),
        }
        changed = ["status", "run_config", "run_config_hash", "worker_id", "start_time"]

        def run(conn: Connection) -> None:
            _require(conn, master_jobs.c.master_job_id, job.master_job_id, "master job")
            current = conn.execute(
                select(execution_jobs.c.master_job_id).where(execution_jobs.c.job_id == job.job_id)
            ).scalar()
            if current is not None and current != job.master_job_id:
                raise InvalidInput(
                    f"execution job {job.job_id!r} belongs to master job {current!r}, "
                    f"not {job.master_job_id!r}"
                )
            conn.execute(
                insert_or_update(conn, execution_jobs, ["job_id"], [*changed, "update_time"]),
                [row],
            )

        self.db.transact("logging an execution job start", run)

    def log_execution_job_end(
        self,
        job_id: str,
        final_status: str,
        counts: Mapping[str, int] | None = None,
        end_time: datetime | None = None,
        update_time: datetime | None = None,
        error_message: str | None = None,
    ) -> None:
        """Record the end of an execution job with its counts (keys of
        :data:`COUNT_KEYS`) and, if it failed, why."""
        check_status(final_status, JOB_STATUSES, "execution job")
        values: dict[str, Any] = {
            "status": final_status,
            "error_message": error_message,
            "end_time": to_micros(end_time or utc_now(), "end_time"),
            "update_time": to_micros(update_time or utc_now(), "update_time"),
            **_count_columns(counts or {}, list(COUNT_KEYS)),
        }
        self.db.transact(
            "logging an execution job end",
            lambda c: _update_one(
                c, execution_jobs, execution_jobs.c.job_id, job_id, values, "execution job"
            ),
        )

    def get_execution_job(self, job_id: str) -> ExecutionJob | None:
        with self.db.read("reading an execution job") as conn:
            row = conn.execute(
                select(execution_jobs).where(execution_jobs.c.job_id == job_id)
            ).first()
        return None if row is None else _model(ExecutionJob, row)

    def list_execution_jobs(
        self,
        master_job_id: str,
        status_filter: Sequence[str] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ExecutionJob]:
        _page(limit, offset)
        query = select(execution_jobs).where(execution_jobs.c.master_job_id == master_job_id)
        statuses = _statuses(status_filter, JOB_STATUSES)
        if statuses is not None:
            query = query.where(execution_jobs.c.status.in_(statuses))
        query = query.order_by(execution_jobs.c.creation_time, execution_jobs.c.job_id)
        with self.db.read("listing execution jobs") as conn:
            return [
                _model(ExecutionJob, r) for r in conn.execute(query.limit(limit).offset(offset))
            ]

    def find_execution_jobs(
        self, run_config_hash: str, status_filter: Sequence[str] | None = None
    ) -> list[ExecutionJob]:
        """Jobs that ran a config (by its hash): what to resume after a crash."""
        query = select(execution_jobs).where(execution_jobs.c.run_config_hash == run_config_hash)
        statuses = _statuses(status_filter, JOB_STATUSES)
        if statuses is not None:
            query = query.where(execution_jobs.c.status.in_(statuses))
        query = query.order_by(execution_jobs.c.creation_time, execution_jobs.c.job_id)
        with self.db.read("finding execution jobs") as conn:
            return [_model(ExecutionJob, r) for r in conn.execute(query)]

    # -- records ----------------------------------------------------------------------------
    def log_record_metadata(self, record: Record) -> None:
        """Create or update one record (see :meth:`log_records`)."""
        self.log_records([record])

    def log_records(
        self, batch: Sequence[Record], data: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        """Create or update records in one transaction, counts kept exact.

        ``data`` maps a record_uid to its JSON payload: the payloads are stored in the same
        transaction as the rows and set their ``output_ref``, so no crash can leave a row
        without its data or data without its row. A record's job must exist and belong to
        the record's master job; a record never moves to another job. The same
        ``record_uid`` twice in a batch keeps the last.
        """
        rows = {r.record_uid: _record_row(r) for r in batch}
        if not rows:
            return
        payloads = {uid: payload_bytes(d) for uid, d in (data or {}).items()}
        unknown = set(payloads) - set(rows)
        if unknown:
            raise InvalidInput(f"data for records not in the batch: {sorted(unknown)[:5]}")
        small = {uid: b for uid, b in payloads.items() if len(b) <= INLINE_MAX}
        refs: dict[str, str] = {}

        def run(conn: Connection) -> None:
            stored = self.keep.store.record_inline(conn, list(small.values()))
            refs.update(zip(small, stored, strict=True))
            # in uid order: concurrent writers then lock rows in the same order
            _log_records(
                conn,
                [
                    rows[uid]._replace(output_ref=refs[uid]) if uid in refs else rows[uid]
                    for uid in sorted(rows)
                ],
            )

        try:
            with self.keep.store.leases.shared():  # no gc between payload and row
                for uid, blob in payloads.items():
                    if uid not in small:  # files, written before the index transaction
                        refs[uid] = self.keep.put(blob).digest
                self.db.transact("logging records", run)
        except IndexFailure as exc:
            # the database refused an unknown job or a job of another master job: say which
            if "foreign key" in str(exc).lower():
                self._explain_missing_jobs(rows.values())
            raise

    def _explain_missing_jobs(self, rows: Iterable[RecordRow]) -> None:
        pairs = {(r.job_id, r.master_job_id) for r in rows}
        query = select(execution_jobs.c.job_id, execution_jobs.c.master_job_id).where(
            execution_jobs.c.job_id.in_([job for job, _ in pairs])
        )
        with self.db.read("checking execution jobs") as conn:
            known = {job: master for job, master in conn.execute(query)}
        for job, master in sorted(pairs):
            if job not in known:
                raise NotFound(f"no execution job {job!r}: log its start before its records")
            if known[job] != master:
                raise InvalidInput(
                    f"execution job {job!r} belongs to master job {known[job]!r}, not {master!r}"
                )

    def get_record_metadata(self, record_uid: str) -> Record | None:
        with self.db.read("reading a record") as conn:
            row = conn.execute(select(records).where(records.c.record_uid == record_uid)).first()
        return None if row is None else _model(Record, row)

    def list_records(
        self,
        master_job_id: str | None = None,
        job_id: str | None = None,
        status_filter: Sequence[str] | None = None,
        limit: int = 100,
        after: int | None = None,
    ) -> RecordPage:
        """Records of a master job or of an execution job, oldest first, ``limit`` at a
        time; keyset paging (``after=page.next``) never skips or repeats a record while
        new ones arrive."""
        _page(limit)
        if (master_job_id is None) == (job_id is None):
            raise InvalidInput("give master_job_id or job_id")
        query = select(records)
        if master_job_id is not None:
            query = query.where(records.c.master_job_id == master_job_id)
        else:
            query = query.where(records.c.job_id == job_id)
        statuses = _statuses(status_filter, RECORD_STATUSES)
        if statuses is not None:
            query = query.where(records.c.status.in_(statuses))
        if after is not None:
            query = query.where(records.c.seq > after)
        query = query.order_by(records.c.seq).limit(limit + 1)
        with self.db.read("listing records") as conn:
            rows = conn.execute(query).all()
        items = [_model(Record, r) for r in rows[:limit]]
        return RecordPage(items, rows[limit - 1].seq if len(rows) > limit else None)

    def count_records(
        self,
        master_job_id: str | None = None,
        job_id: str | None = None,
        status_filter: Sequence[str] | None = None,
    ) -> dict[str, int]:
        """Records per status (every status listed, zeros included) of a master job or of
        an execution job."""
        if (master_job_id is None) == (job_id is None):
            raise InvalidInput("give master_job_id or job_id")
        where = (
            record_counts.c.master_job_id == master_job_id
            if master_job_id is not None
            else record_counts.c.job_id == job_id
        )
        with self.db.read("counting records") as conn:
            found = _count(conn, where)
        statuses = _statuses(status_filter, RECORD_STATUSES) or list(RECORD_STATUSES)
        return {status: found.get(status, 0) for status in statuses}


# -- rows <-> models --------------------------------------------------------------------------
_JSON_FIELDS = frozenset({"output_config", "summary", "run_config"})
M = TypeVar("M", Project, MasterJob, ExecutionJob, Record)


def _model(cls: type[M], row: Row[Any]) -> M:
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


def _record_row(record: Record) -> RecordRow:
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
    )


# -- statements -------------------------------------------------------------------------------
def _require(conn: Connection, column: Any, value: str, what: str) -> None:
    if conn.execute(select(column).where(column == value)).first() is None:
        raise NotFound(f"no {what} {value!r}")


def _update_one(
    conn: Connection, table: Any, key: Any, value: str, values: Mapping[str, Any], what: str
) -> None:
    if conn.execute(update(table).where(key == value).values(**values)).rowcount == 0:
        raise NotFound(f"no {what} {value!r}")


MASTER_END_COUNTS = ("completed", "filtered", "duplicate", "failed", "total")


def _count_columns(counts: Mapping[str, int], allowed: Sequence[str]) -> dict[str, int]:
    unknown = set(counts) - set(allowed)
    if unknown:
        raise InvalidInput(f"unknown count(s) {sorted(unknown)}; use {sorted(allowed)}")
    for key, n in counts.items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise InvalidInput(f"count {key!r} must be a non-negative integer")
    return {COUNT_KEYS[k]: n for k, n in counts.items() if k in COUNT_KEYS}


def _count(conn: Connection, where: Any) -> dict[str, int]:
    query = (
        select(record_counts.c.status, func.sum(record_counts.c.n))
        .where(where)
        .group_by(record_counts.c.status)
    )
    return {status: int(n) for status, n in conn.execute(query) if n}


def _log_records(conn: Connection, rows: list[RecordRow]) -> None:
    """Insert new records, update known ones, and move their counts, in one transaction."""
    inserted = _insert_new(conn, rows)
    if inserted is None:  # all new: the common case, counted in C
        new, known = rows, []
    else:
        new = [r for r in rows if r.record_uid in inserted]
        known = [r for r in rows if r.record_uid not in inserted]
    deltas = Counter((r.master_job_id, r.job_id, r.status) for r in new)

    def move(master: str, job: str, status: str, by: int) -> None:
        deltas[(master, job, status)] += by

    if known:
        query = select(records.c.record_uid, records.c.job_id, records.c.status).where(
            records.c.record_uid.in_([r.record_uid for r in known])
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        before = {uid: (job, status) for uid, job, status in conn.execute(query)}
        for row in known:
            job, status = before[row.record_uid]
            if job != row.job_id:
                raise InvalidInput(
                    f"record {row.record_uid!r} belongs to execution job {job!r}, "
                    f"not {row.job_id!r}"
                )
            move(row.master_job_id, job, status, -1)
            move(row.master_job_id, job, row.status, 1)
        conn.execute(
            update(records)
            .where(records.c.record_uid == _bind("uid"))
            .values(
                status=_bind("status"),
                output_ref=_bind("output_ref"),
                error_message=_bind("error_message"),
                updated_at=_bind("updated_at"),
            ),
            [
                {**{f"b_{k}": v for k, v in r._asdict().items()}, "b_uid": r.record_uid}
                for r in known
            ],
        )
    changes = [
        {"master_job_id": m, "job_id": j, "status": s, "n": n}
        for (m, j, s), n in sorted(deltas.items())
        if n
    ]
    if not changes:
        return
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_SQLITE_ADD_COUNTS, [tuple(c.values()) for c in changes])
    else:
        conn.execute(
            insert_or_add(conn, record_counts, ["master_job_id", "job_id", "status"], ["n"]),
            changes,
        )


_SQLITE_INSERT = (
    f"INSERT INTO runs_records ({', '.join(RecordRow._fields)}) "
    f"VALUES ({', '.join('?' * len(RecordRow._fields))})"
)
_SQLITE_ADD_COUNTS = (
    "INSERT INTO runs_record_counts (master_job_id, job_id, status, n) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (master_job_id, job_id, status) DO UPDATE SET n = n + excluded.n"
)


def _insert_new(conn: Connection, rows: list[RecordRow]) -> set[str] | None:
    """Insert the records not stored yet; returns their uids, or None if that is all."""
    if conn.dialect.name != "sqlite":
        # concurrent writers may insert the same uid at once: RETURNING says who won
        new = insert_ignore(conn, records, ["record_uid"], returning=["record_uid"])
        return set(conn.execute(new, [r._asdict() for r in rows]).scalars())
    # SQLite: this transaction holds the write lock, so what is absent now stays absent,
    # and the driver's own executemany skips SQLAlchemy's per-row parameter handling
    # (logging a batch took 2.5x raw sqlite3 through it). Most batches are all new: try
    # them in one statement, and only if some exist already, find out which.
    conn.exec_driver_sql("SAVEPOINT new_records")
    try:
        conn.exec_driver_sql(_SQLITE_INSERT, rows)
        conn.exec_driver_sql("RELEASE new_records")
        return None
    except DBIntegrityError:
        conn.exec_driver_sql("ROLLBACK TO new_records")
        conn.exec_driver_sql("RELEASE new_records")
    uids = [r.record_uid for r in rows]
    existing: set[str] = set()
    for i in range(0, len(uids), 500):
        part = tuple(uids[i : i + 500])
        marks = ", ".join("?" * len(part))
        found = conn.exec_driver_sql(
            f"SELECT record_uid FROM runs_records WHERE record_uid IN ({marks})", part
        )
        existing.update(uid for (uid,) in found)
    fresh = [r for r in rows if r.record_uid not in existing]
    if fresh:
        conn.exec_driver_sql(_SQLITE_INSERT, fresh)
    return {r.record_uid for r in fresh}


def _bind(name: str) -> Any:
    # prefixed: SQLAlchemy reserves bind names equal to the column names being set
    return bindparam(f"b_{name}")
