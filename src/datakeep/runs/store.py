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
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, select

from ..content import INLINE_MAX
from ..digest import parse_digest
from ..errors import InvalidInput, NotFound
from ..index.upsert import insert_or_update
from ..keep import Keep
from .convert import check_id, from_json, to_json, to_micros
from .listing import RunListing
from .models import (
    JOB_STATUSES,
    MASTER_JOB_STATUSES,
    ExecutionJob,
    MasterJob,
    Project,
    check_status,
    utc_now,
)
from .records import RecordLog
from .refs import RECORD_DATA, REQUEST_CONFIG, issued, plain_id
from .rows import (
    COUNT_KEYS,
    MASTER_COUNT_COLUMNS,
    MASTER_END_COUNTS,
    count_by_status,
    count_columns,
    model_of,
    payload_bytes,
    require,
    update_one,
)
from .schema import execution_jobs, master_jobs, projects, record_counts, request_configs

__all__ = ["RunStore"]


class RunStore(RecordLog, RunListing):
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
        return f"{REQUEST_CONFIG}/{plain_id(master_job_id, 'master_job_id')}"

    def record_data_ref(self, record_uid: str) -> str:
        """A reference to give ``save_record_data`` for a record's payload."""
        return f"{RECORD_DATA}/{plain_id(record_uid, 'record_uid')}"

    def save_request_config(self, config_ref: str, config: Mapping[str, Any]) -> str:
        """Store a request config (as verified content) under ``config_ref``: a reference
        from :meth:`request_config_ref` or a digest, nothing else (no path, no URL)."""
        issued(config_ref, REQUEST_CONFIG, "config_ref")
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
        ``record_uid`` is the record's id, :meth:`record_data_ref` of it, or a digest; a
        path, ``..`` or a URL is refused before anything is stored.

        Until a record row names it, the payload is protected from gc only by the grace
        period; ``log_records(batch, data=...)`` stores payloads and rows together instead.
        """
        issued(record_uid, RECORD_DATA, "record_uid", plain_ids=True)
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
        return None if row is None else model_of(Project, row)

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
            **{column: getattr(job, column) for column in MASTER_COUNT_COLUMNS},
            "target_record_count": job.target_record_count,
            "storage_uri": job.storage_uri,
            "metadata_storage_uri_override": job.metadata_storage_uri_override,
            "data_storage_uri_override": job.data_storage_uri_override,
            "creation_time": to_micros(job.creation_time, "creation_time"),
            "start_time": to_micros(job.start_time or utc_now(), "start_time"),
            "end_time": to_micros(job.end_time, "end_time"),
            "update_time": to_micros(job.update_time, "update_time"),
        }
        changed = [
            "name",
            "status",
            "request_config_ref",
            "output_config",
            "start_time",
            "target_record_count",
            "storage_uri",
            "metadata_storage_uri_override",
            "data_storage_uri_override",
        ]

        def run(conn: Connection) -> None:
            require(conn, projects.c.project_id, job.project_id, "project")
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
        """Record the end of a master job with its record counts, always the ones kept
        from the records logged (exact). ``counts`` (``completed``, ``filtered``,
        ``duplicate``, ``failed``, ``total``) are what the caller believes: each is checked
        against the kept one, and a mismatch is written into the summary under
        ``count_mismatch`` (``{key: {"reported": n, "kept": m}}``), never stored over them."""
        check_status(final_status, MASTER_JOB_STATUSES, "master job")
        if counts is not None:
            count_columns(counts, MASTER_END_COUNTS)  # refused now if malformed
        values: dict[str, Any] = {
            "status": final_status,
            "end_time": to_micros(end_time or utc_now(), "end_time"),
            "update_time": to_micros(update_time or utc_now(), "update_time"),
        }

        def run(conn: Connection) -> None:
            by_status = count_by_status(conn, record_counts.c.master_job_id == master_job_id)
            kept = {key: by_status.get(key, 0) for key in MASTER_END_COUNTS[:-1]}
            kept["total"] = sum(by_status.values())
            values["total_record_count"] = kept["total"]
            for key in MASTER_END_COUNTS[:-1]:
                values[COUNT_KEYS[key]] = kept[key]
            final = None if summary is None else dict(summary)
            mismatch = {
                key: {"reported": n, "kept": kept[key]}
                for key, n in (counts or {}).items()
                if n != kept[key]
            }
            if mismatch:
                final = {**(final or {}), "count_mismatch": mismatch}
            values["summary"] = to_json(final, "summary")
            update_one(
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
            lambda c: update_one(
                c, master_jobs, master_jobs.c.master_job_id, master_job_id, values, "master job"
            ),
        )

    def get_master_job(self, master_job_id: str) -> MasterJob | None:
        query = select(master_jobs).where(master_jobs.c.master_job_id == master_job_id)
        with self.db.read("reading a master job") as conn:
            row = conn.execute(query).first()
        return None if row is None else model_of(MasterJob, row)

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
            require(conn, master_jobs.c.master_job_id, job.master_job_id, "master job")
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
            **count_columns(counts or {}, list(COUNT_KEYS)),
        }
        self.db.transact(
            "logging an execution job end",
            lambda c: update_one(
                c, execution_jobs, execution_jobs.c.job_id, job_id, values, "execution job"
            ),
        )

    def get_execution_job(self, job_id: str) -> ExecutionJob | None:
        with self.db.read("reading an execution job") as conn:
            row = conn.execute(
                select(execution_jobs).where(execution_jobs.c.job_id == job_id)
            ).first()
        return None if row is None else model_of(ExecutionJob, row)
