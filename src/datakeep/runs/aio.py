"""The async twin of :class:`RunStore`, for asyncio data factories.

Every call runs in a thread pool, never on the event loop. Calls that thousands of tasks
make at once, logging a record and saving its data, are *coalesced*: whatever arrives
while one batch is being written goes into the next, one transaction each, and every
caller's await returns only once its own row or payload is committed. If a batch fails,
its items are retried one by one, so one bad record fails only its own caller.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import Any, Generic, TypeVar

from ..content import INLINE_MAX
from .aio_listing import AsyncRunListing
from .models import ExecutionJob, MasterJob, Project, Record
from .rows import payload_bytes
from .store import RunStore

__all__ = ["AsyncRunStore"]

I = TypeVar("I")  # noqa: E741
R = TypeVar("R")


class _Coalescer(Generic[I, R]):
    """Turns many concurrent single-item calls into few batched calls."""

    def __init__(
        self,
        write_batch: Callable[[list[I]], list[R]],
        pool: ThreadPoolExecutor,
        max_batch: int,
    ) -> None:
        self._write_batch = write_batch
        self._pool = pool
        self._max_batch = max_batch
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            items = [item for item, _ in batch]
            try:
                results = await loop.run_in_executor(self._pool, self._write_batch, items)
            except Exception:
                # find the culprit(s): each item alone, so only bad ones fail
                for item, future in batch:
                    try:
                        alone = await loop.run_in_executor(self._pool, self._write_batch, [item])
                        _settle(future, alone[0])
                    except Exception as exc:
                        if not future.done():
                            future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                _settle(future, result)

    async def flush(self) -> None:
        if self._writer is not None:
            await self._writer


def _settle(future: asyncio.Future[R], result: R) -> None:
    if not future.done():  # the caller may have been cancelled
        future.set_result(result)


class AsyncRunStore(AsyncRunListing):
    """``async with AsyncRunStore.open(".") as runs: await runs.log_record(...)``."""

    def __init__(self, store: RunStore, max_batch: int = 2000, threads: int = 4) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="datakeep-runs")
        self._records: _Coalescer[tuple[Record, Mapping[str, Any] | None], None] = _Coalescer(
            self._log_batch, self._pool, max_batch
        )
        self._payloads: _Coalescer[bytes, str] = _Coalescer(
            self.store.keep.store.put_inline, self._pool, max_batch
        )

    @classmethod
    def open(cls, path: str | os.PathLike[str] = ".") -> AsyncRunStore:
        return cls(RunStore.open(path))

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args))

    # -- lifecycle -------------------------------------------------------------------------
    async def setup(self) -> None:
        await self._run(self.store.setup)

    async def close(self) -> None:
        """Wait for every coalesced write, then close; idempotent (a second close, or one
        after a failed open, returns quietly)."""
        if self._pool._shutdown:
            return
        try:
            await self._records.flush()
            await self._payloads.flush()
            await self._run(self.store.close)
        finally:
            self._pool.shutdown(wait=True)

    async def __aenter__(self) -> AsyncRunStore:
        await self.setup()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- coalesced writes ------------------------------------------------------------------
    def _log_batch(self, items: list[tuple[Record, Mapping[str, Any] | None]]) -> list[None]:
        data = {record.record_uid: d for record, d in items if d is not None}
        self.store.log_records([record for record, _ in items], data)
        return [None] * len(items)

    async def log_record(self, record: Record, data: Mapping[str, Any] | None = None) -> None:
        """Log one record (and store its payload with it), batched with concurrent calls."""
        await self._records.submit((record, data))

    async def log_record_metadata(self, record: Record) -> None:
        await self._records.submit((record, None))

    async def save_record_data(
        self, record_uid: str, master_job_id: str, job_id: str, data: Mapping[str, Any]
    ) -> str:
        blob = payload_bytes(data)
        if len(blob) > INLINE_MAX:
            return await self._run(
                self.store.save_record_data, record_uid, master_job_id, job_id, data
            )
        return await self._payloads.submit(blob)

    # -- everything else, off the event loop -------------------------------------------------
    async def log_records(
        self, batch: Sequence[Record], data: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        await self._run(self.store.log_records, batch, data)

    async def get_record_data(self, output_ref: str) -> dict[str, Any]:
        return await self._run(self.store.get_record_data, output_ref)

    async def save_request_config(self, config_ref: str, config: Mapping[str, Any]) -> str:
        return await self._run(self.store.save_request_config, config_ref, config)

    async def get_request_config(self, config_ref: str) -> dict[str, Any]:
        return await self._run(self.store.get_request_config, config_ref)

    def request_config_ref(self, master_job_id: str) -> str:
        return self.store.request_config_ref(master_job_id)

    def record_data_ref(self, record_uid: str) -> str:
        return self.store.record_data_ref(record_uid)

    async def save_project(self, project: Project) -> None:
        await self._run(self.store.save_project, project)

    async def get_project(self, project_id: str) -> Project | None:
        return await self._run(self.store.get_project, project_id)

    async def log_master_job_start(self, job: MasterJob) -> None:
        await self._run(self.store.log_master_job_start, job)

    async def log_master_job_end(
        self,
        master_job_id: str,
        final_status: str,
        summary: Mapping[str, Any] | None = None,
        end_time: datetime | None = None,
        update_time: datetime | None = None,
        counts: Mapping[str, int] | None = None,
    ) -> None:
        await self._records.flush()  # counts include every record logged before the end
        await self._run(
            self.store.log_master_job_end,
            master_job_id,
            final_status,
            summary,
            end_time,
            update_time,
            counts,
        )

    async def update_master_job_status(
        self, master_job_id: str, status: str, update_time: datetime | None = None
    ) -> None:
        await self._run(self.store.update_master_job_status, master_job_id, status, update_time)

    async def get_master_job(self, master_job_id: str) -> MasterJob | None:
        return await self._run(self.store.get_master_job, master_job_id)

    async def log_execution_job_start(self, job: ExecutionJob) -> None:
        await self._run(self.store.log_execution_job_start, job)

    async def log_execution_job_end(
        self,
        job_id: str,
        final_status: str,
        counts: Mapping[str, int] | None = None,
        end_time: datetime | None = None,
        update_time: datetime | None = None,
        error_message: str | None = None,
    ) -> None:
        await self._run(
            self.store.log_execution_job_end,
            job_id,
            final_status,
            counts,
            end_time,
            update_time,
            error_message,
        )

    async def get_execution_job(self, job_id: str) -> ExecutionJob | None:
        return await self._run(self.store.get_execution_job, job_id)

    async def get_record_metadata(self, record_uid: str) -> Record | None:
        return await self._run(self.store.get_record_metadata, record_uid)

    async def count_records(
        self,
        master_job_id: str | None = None,
        job_id: str | None = None,
        status_filter: Sequence[str] | None = None,
    ) -> dict[str, int]:
        await self._records.flush()
        return await self._run(self.store.count_records, master_job_id, job_id, status_filter)
