"""The run pages' queries: projects, master jobs with their record counts, execution
jobs, records (status filter, keyset pages) and one record with its payload. The lists
page with the run store's own opaque tokens, so a page deep into a million records costs
what the first does."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from ..errors import NotFound
from ..keep import Keep
from ..runs import RECORD_STATUSES, RunStore
from ..runs.schema import record_counts
from .runchart import StatusChart

__all__ = [
    "PAGE",
    "chart_page",
    "execution_job_page",
    "master_job_page",
    "project_page",
    "projects_page",
    "record_page",
]

PAGE = 50


def _json(model: Any) -> dict[str, Any]:
    """A run model as JSON: datetimes in ISO 8601 (UTC, as the store reads them back)."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(model).items()}


def _statuses(status: str | None) -> list[str] | None:
    return [status] if status else None


def _counts_of(store: RunStore, master_job_ids: list[str]) -> dict[str, dict[str, int]]:
    """Records per status of each master job, from the counts the store keeps exact (a
    handful of rows per job, never the records)."""
    if not master_job_ids:
        return {}
    query = (
        select(record_counts.c.master_job_id, record_counts.c.status, func.sum(record_counts.c.n))
        .where(record_counts.c.master_job_id.in_(master_job_ids))
        .group_by(record_counts.c.master_job_id, record_counts.c.status)
    )
    found: dict[str, dict[str, int]] = {
        m: dict.fromkeys(RECORD_STATUSES, 0) for m in master_job_ids
    }
    with store.db.read("counting records") as conn:
        for master, status, n in conn.execute(query):
            found[master][status] = int(n or 0)
    return found


def projects_page(keep: Keep, after: str | None) -> dict[str, Any]:
    store = RunStore(keep)
    page = store.list_projects(limit=PAGE, after=after or None)
    return {"items": [_json(p) for p in page], "next": page.next}


def project_page(keep: Keep, project_id: str, after: str | None) -> dict[str, Any]:
    """A project with its master jobs (newest first), each with its records per status."""
    store = RunStore(keep)
    project = store.get_project(project_id)
    if project is None:
        raise NotFound(f"no project {project_id!r}")
    page = store.list_master_jobs(project_id, limit=PAGE, after=after or None)
    counts = _counts_of(store, [m.master_job_id for m in page])
    jobs = [{**_json(m), "record_counts": counts[m.master_job_id]} for m in page]
    return {"project": _json(project), "master_jobs": jobs, "next": page.next}


def master_job_page(
    keep: Keep,
    master_job_id: str,
    status: str | None,
    after: str | None,
    jobs_after: str | None,
) -> dict[str, Any]:
    """A master job: its counts, a page of its execution jobs and a page of its records
    (of one status, if given)."""
    store = RunStore(keep)
    job = store.get_master_job(master_job_id)
    if job is None:
        raise NotFound(f"no master job {master_job_id!r}")
    jobs = store.list_execution_jobs(master_job_id, limit=PAGE, after=jobs_after or None)
    records = store.list_records(
        master_job_id=master_job_id, status=_statuses(status), limit=PAGE, after=after or None
    )
    return {
        "master_job": _json(job),
        "record_counts": _counts_of(store, [master_job_id])[master_job_id],
        "execution_jobs": [_json(j) for j in jobs],
        "execution_jobs_next": jobs.next,
        "records": [_json(r) for r in records],
        "next": records.next,
        "status": status,
        "statuses": list(RECORD_STATUSES),
    }


def execution_job_page(
    keep: Keep, job_id: str, status: str | None, after: str | None
) -> dict[str, Any]:
    store = RunStore(keep)
    job = store.get_execution_job(job_id)
    if job is None:
        raise NotFound(f"no execution job {job_id!r}")
    records = store.list_records(
        job_id=job_id, status=_statuses(status), limit=PAGE, after=after or None
    )
    return {
        "execution_job": _json(job),
        "record_counts": store.count_records(job_id=job_id),
        "records": [_json(r) for r in records],
        "next": records.next,
        "status": status,
        "statuses": list(RECORD_STATUSES),
    }


def chart_page(keep: Keep, charts: StatusChart, master_job_id: str) -> dict[str, Any]:
    """Records per status over time (:mod:`.runchart`)."""
    if RunStore(keep).get_master_job(master_job_id) is None:
        raise NotFound(f"no master job {master_job_id!r}")
    return {"master_job_id": master_job_id, **charts.of(master_job_id)}


def record_page(keep: Keep, record_uid: str) -> dict[str, Any]:
    """A record and its payload (verified as it is read; None if it has none)."""
    store = RunStore(keep)
    record = store.get_record_metadata(record_uid)
    if record is None:
        raise NotFound(f"no record {record_uid!r}")
    data = None if record.output_ref is None else store.get_record_data(record.output_ref)
    return {"record": _json(record), "data": data}
