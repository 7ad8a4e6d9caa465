"""Listing projects and jobs: in the order asked for, keyset-paged, or all as an iterator
that pages underneath (``limit=None``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TypeVar, overload

from sqlalchemy import select

from ..index import IndexDatabase
from .models import JOB_STATUSES, MASTER_JOB_STATUSES, ExecutionJob, MasterJob, Project
from .paging import Page, check_order, page_of, pages
from .rows import checked_statuses, model_of
from .schema import execution_jobs, master_jobs, projects

__all__ = ["JOB_ORDERS", "PROJECT_ORDERS", "RunListing", "paged"]

T = TypeVar("T")
PROJECT_ORDERS = ("created", "name")
JOB_ORDERS = ("newest", "oldest")


class RunListing:
    """The listings of a :class:`~datakeep.runs.RunStore`."""

    db: IndexDatabase

    @overload
    def list_projects(
        self, order: str = "created", limit: int = 100, after: str | None = None
    ) -> Page[Project]: ...
    @overload
    def list_projects(
        self, order: str = "created", *, limit: None, after: str | None = None
    ) -> Iterator[Project]: ...
    def list_projects(
        self, order: str = "created", limit: int | None = 100, after: str | None = None
    ) -> Page[Project] | Iterator[Project]:
        """Projects by creation time (oldest first) or by name."""
        check_order(order, PROJECT_ORDERS)
        first = projects.c.created_at if order == "created" else projects.c.name
        key = [first, projects.c.project_id]
        fetch = partial(
            page_of, self.db, select(projects), key, order, False, make=partial(model_of, Project)
        )
        return paged(fetch, limit, after)

    @overload
    def list_master_jobs(
        self,
        project_id: str | None = None,
        status_filter: Sequence[str] | None = None,
        limit: int = 100,
        after: str | None = None,
        order: str = "newest",
    ) -> Page[MasterJob]: ...
    @overload
    def list_master_jobs(
        self,
        project_id: str | None = None,
        status_filter: Sequence[str] | None = None,
        *,
        limit: None,
        after: str | None = None,
        order: str = "newest",
    ) -> Iterator[MasterJob]: ...
    def list_master_jobs(
        self,
        project_id: str | None = None,
        status_filter: Sequence[str] | None = None,
        limit: int | None = 100,
        after: str | None = None,
        order: str = "newest",
    ) -> Page[MasterJob] | Iterator[MasterJob]:
        """Master jobs (of a project, with these statuses), newest first by default."""
        check_order(order, JOB_ORDERS)
        query = select(master_jobs)
        if project_id is not None:
            query = query.where(master_jobs.c.project_id == project_id)
        statuses = checked_statuses(status_filter, MASTER_JOB_STATUSES)
        if statuses is not None:
            query = query.where(master_jobs.c.status.in_(statuses))
        key = [master_jobs.c.creation_time, master_jobs.c.master_job_id]
        make = partial(model_of, MasterJob)
        fetch = partial(page_of, self.db, query, key, order, order == "newest", make=make)
        return paged(fetch, limit, after)

    @overload
    def list_execution_jobs(
        self,
        master_job_id: str,
        status_filter: Sequence[str] | None = None,
        limit: int = 100,
        after: str | None = None,
        order: str = "newest",
    ) -> Page[ExecutionJob]: ...
    @overload
    def list_execution_jobs(
        self,
        master_job_id: str,
        status_filter: Sequence[str] | None = None,
        *,
        limit: None,
        after: str | None = None,
        order: str = "newest",
    ) -> Iterator[ExecutionJob]: ...
    def list_execution_jobs(
        self,
        master_job_id: str,
        status_filter: Sequence[str] | None = None,
        limit: int | None = 100,
        after: str | None = None,
        order: str = "newest",
    ) -> Page[ExecutionJob] | Iterator[ExecutionJob]:
        """Execution jobs of a master job (with these statuses), newest first by default."""
        check_order(order, JOB_ORDERS)
        query = select(execution_jobs).where(execution_jobs.c.master_job_id == master_job_id)
        statuses = checked_statuses(status_filter, JOB_STATUSES)
        if statuses is not None:
            query = query.where(execution_jobs.c.status.in_(statuses))
        key = [execution_jobs.c.creation_time, execution_jobs.c.job_id]
        make = partial(model_of, ExecutionJob)
        fetch = partial(page_of, self.db, query, key, order, order == "newest", make=make)
        return paged(fetch, limit, after)

    def find_execution_jobs(
        self,
        run_config_hash: str,
        status_filter: Sequence[str] | None = None,
        master_job_id: str | None = None,
    ) -> list[ExecutionJob]:
        """Jobs that ran a config (by its hash), oldest first: what to resume after a
        crash, within one master job if given."""
        query = select(execution_jobs).where(execution_jobs.c.run_config_hash == run_config_hash)
        if master_job_id is not None:
            query = query.where(execution_jobs.c.master_job_id == master_job_id)
        statuses = checked_statuses(status_filter, JOB_STATUSES)
        if statuses is not None:
            query = query.where(execution_jobs.c.status.in_(statuses))
        query = query.order_by(execution_jobs.c.creation_time, execution_jobs.c.job_id)
        with self.db.read("finding execution jobs") as conn:
            return [model_of(ExecutionJob, r) for r in conn.execute(query)]


_ALL_PAGE = 500


def paged(
    fetch: Callable[[int, str | None], Page[T]], limit: int | None, after: str | None
) -> Page[T] | Iterator[T]:
    """One page, or with ``limit=None`` every item, a page at a time as it is iterated."""
    if limit is None:
        first = fetch(_ALL_PAGE, after)  # a bad token is refused now, not on the first next()
        return _from(first, lambda token: fetch(_ALL_PAGE, token))
    return fetch(limit, after)


def _from(first: Page[T], fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    yield from first
    if first.next is not None:
        yield from pages(fetch, first.next)
