"""Records: logged in batches with their payloads and exact counts per status, listed with
keyset paging, counted from the counts table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, overload

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from ..content import INLINE_MAX
from ..content.rows import executor
from ..errors import IndexFailure, InvalidInput, NotFound
from ..index import IndexDatabase
from ..index.upsert import insert_ignore, insert_or_add
from ..keep import Keep
from .listing import JOB_ORDERS, paged
from .models import RECORD_STATUSES, Record
from .paging import Page, check_order, page_of
from .rows import (
    RecordRow,
    checked_statuses,
    count_by_status,
    model_of,
    payload_bytes,
    record_row,
)
from .schema import execution_jobs, record_counts, records

__all__ = ["RecordLog", "RecordPage"]


RecordPage = Page[Record]
"""One page of records (a list); pass ``next`` as ``after`` for the following page."""


class RecordLog:
    """The records of a :class:`~datakeep.runs.RunStore` (its part that writes and reads
    them)."""

    keep: Keep
    db: IndexDatabase

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
        rows = {r.record_uid: record_row(r) for r in batch}
        if not rows:
            return
        payloads = {uid: payload_bytes(d) for uid, d in (data or {}).items()}
        unknown = set(payloads) - set(rows)
        if unknown:
            raise InvalidInput(f"data for records not in the batch: {sorted(unknown)[:5]}")
        small = {uid: b for uid, b in payloads.items() if len(b) <= INLINE_MAX}
        refs: dict[str, str] = {}

        def run(conn: Connection) -> None:
            stored = self.keep.store.record_inline(executor(conn), list(small.values()))
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
        return None if row is None else model_of(Record, row)

    @overload
    def list_records(
        self,
        master_job_id: str | None = None,
        job_id: str | None = None,
        status: str | Sequence[str] | None = None,
        limit: int = 100,
        after: str | None = None,
        order: str = "newest",
        status_filter: Sequence[str] | None = None,
    ) -> Page[Record]: ...
    @overload
    def list_records(
        self,
        master_job_id: str | None = None,
        job_id: str | None = None,
        status: str | Sequence[str] | None = None,
        *,
        limit: None,
        after: str | None = None,
        order: str = "newest",
        status_filter: Sequence[str] | None = None,
    ) -> Iterator[Record]: ...
    def list_records(
        self,
        master_job_id: str | None = None,
        job_id: str | None = None,
        status: str | Sequence[str] | None = None,
        limit: int | None = 100,
        after: str | None = None,
        order: str = "newest",
        status_filter: Sequence[str] | None = None,
    ) -> Page[Record] | Iterator[Record]:
        """Records of a master job, of an execution job, or of both (the job within the
        master job), with these statuses, newest first by default; ``limit`` at a time
        with keyset paging (``after=page.next``), which never skips or repeats a record
        while new ones arrive; ``limit=None`` for all of them, paged underneath.
        ``status_filter`` is the older name of ``status``."""
        check_order(order, JOB_ORDERS)
        if master_job_id is None and job_id is None:
            raise InvalidInput("give master_job_id, job_id or both")
        if status is not None and status_filter is not None:
            raise InvalidInput("give status or status_filter, not both")
        query = select(records)
        if master_job_id is not None:
            query = query.where(records.c.master_job_id == master_job_id)
        if job_id is not None:
            query = query.where(records.c.job_id == job_id)
        statuses = checked_statuses(
            status if status is not None else status_filter, RECORD_STATUSES
        )
        if statuses is not None:
            query = query.where(records.c.status.in_(statuses))
        make = partial(model_of, Record)
        fetch = partial(
            page_of, self.db, query, [records.c.seq], order, order == "newest", make=make
        )
        return paged(fetch, limit, after)

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
            found = count_by_status(conn, where)
        statuses = checked_statuses(status_filter, RECORD_STATUSES) or list(RECORD_STATUSES)
        return {status: found.get(status, 0) for status in statuses}


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
                end_time=_bind("end_time"),
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
