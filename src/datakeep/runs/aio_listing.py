"""The listings of :class:`~datakeep.runs.AsyncRunStore`: a page per await, or with
``limit=None`` an async iterator over everything, fetching a page at a time off the loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar, overload

from .models import ExecutionJob, MasterJob, Project, Record
from .paging import Page
from .store import RunStore

__all__ = ["AsyncRunListing"]

T = TypeVar("T")
R = TypeVar("R")
_ALL_PAGE = 500


class AsyncRunListing:
    store: RunStore

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        """Run ``fn`` off the event loop: :class:`~datakeep.runs.AsyncRunStore` provides
        it (its thread pool); this mixin only declares it."""
        raise NotImplementedError

    async def _listing(
        self, fetch: Callable[[int, str | None], Page[T]], limit: int | None, after: str | None
    ) -> Page[T] | AsyncIterator[T]:
        if limit is not None:
            return await self._run(fetch, limit, after)
        first = await self._run(fetch, _ALL_PAGE, after)  # a bad token is refused here

        async def everything() -> AsyncIterator[T]:
            page = first
            while True:
                for item in page:
                    yield item
                if page.next is None:
                    return
                page = await self._run(fetch, _ALL_PAGE, page.next)

        return everything()

    @overload
    async def list_projects(
        self, order: str = "created", limit: int = 100, after: str | None = None
    ) -> Page[Project]: ...
    @overload
    async def list_projects(
        self, order: str = "created", *, limit: None, after: str | None = None
    ) -> AsyncIterator[Project]: ...
    async def list_projects(
        self, order: str = "created", limit: int | None = 100, after: str | None = None
    ) -> Page[Project] | AsyncIterator[Project]:
        def fetch(n: int, token: str | None) -> Page[Project]:
            return self.store.list_projects(order, n, token)

        return await self._listing(fetch, limit, after)

    @overload
    async def list_master_jobs(
        self,
        project_id: str | None = None,
        status_filter: Sequence[str] | None = None,
        limit: int = 100,
        after: str | None = None,
        order: str = "newest",
    ) -> Page[MasterJob]: ...
    @overload
    async def list_master_jobs(
        self,
        project_id: str | None = None,
        status_filter: Sequence[str] | None = None,
        *,
        limit: None,
        after: str | None = None,
        order: str = "newest",
    ) -> AsyncIterator[MasterJob]: ...
    async def list_master_jobs(
        self,
        project_id: str | None = None,
        status_filter: Sequence[str] | None = None,
        limit: int | None = 100,
        after: str | None = None,
        order: str = "newest",
    ) -> Page[MasterJob] | AsyncIterator[MasterJob]:
        def fetch(n: int, token: str | None) -> Page[MasterJob]:
            return self.store.list_master_jobs(project_id, status_filter, n, token, order)

        return await self._listing(fetch, limit, after)

    @overload
    async def list_execution_jobs(
        self,
        master_job_id: str,
        status_filter: Sequence[str] | None = None,
        limit: int = 100,
        after: str | None = None,
        order: str = "newest",
    ) -> Page[ExecutionJob]: ...
    @overload
    async def list_execution_jobs(
        self,
        master_job_id: str,
        status_filter: Sequence[str] | None = None,
        *,
        limit: None,
        after: str | None = None,
        order: str = "newest",
    ) -> AsyncIterator[ExecutionJob]: ...
    async def list_execution_jobs(
        self,
        master_job_id: str,
        status_filter: Sequence[str] | None = None,
        limit: int | None = 100,
        after: str | None = None,
        order: str = "newest",
    ) -> Page[ExecutionJob] | AsyncIterator[ExecutionJob]:
        def fetch(n: int, token: str | None) -> Page[ExecutionJob]:
            return self.store.list_execution_jobs(master_job_id, status_filter, n, token, order)

        return await self._listing(fetch, limit, after)

    async def find_execution_jobs(
        self,
        run_config_hash: str,
        status_filter: Sequence[str] | None = None,
        master_job_id: str | None = None,
    ) -> list[ExecutionJob]:
        return await self._run(
            self.store.find_execution_jobs, run_config_hash, status_filter, master_job_id
        )

    @overload
    async def list_records(
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
    async def list_records(
        self,
        master_job_id: str | None = None,
        job_id: str | None = None,
        status: str | Sequence[str] | None = None,
        *,
        limit: None,
        after: str | None = None,
        order: str = "newest",
        status_filter: Sequence[str] | None = None,
    ) -> AsyncIterator[Record]: ...
    async def list_records(
        self,
        master_job_id: str | None = None,
        job_id: str | None = None,
        status: str | Sequence[str] | None = None,
        limit: int | None = 100,
        after: str | None = None,
        order: str = "newest",
        status_filter: Sequence[str] | None = None,
    ) -> Page[Record] | AsyncIterator[Record]:
        def fetch(n: int, token: str | None) -> Page[Record]:
            return self.store.list_records(
                master_job_id, job_id, status, n, token, order, status_filter
            )

        return await self._listing(fetch, limit, after)
