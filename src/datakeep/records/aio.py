"""AsyncRecordStore: every I/O call of :class:`RecordStore`, run off the event loop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ..keep import Keep
from ..maintenance.verify import VerifyReport
from .find import RecordPage
from .formats import MISSING
from .model import RecordInfo
from .store import RecordStore

__all__ = ["AsyncRecordStore"]

R = TypeVar("R")


class AsyncRecordStore:
    """``async with await AsyncRecordStore.open(".") as records: await records.create(...)``."""

    def __init__(self, store: RecordStore, threads: int = 4) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="datakeep-records")

    @classmethod
    async def open(cls, keep_or_path: Keep | str | os.PathLike[str] = ".") -> AsyncRecordStore:
        return cls(await asyncio.to_thread(RecordStore.open, keep_or_path))

    async def _run(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(fn, *args, **kwargs))

    async def create(
        self,
        kind: str,
        config: Any,
        parent: str | None = None,
        predicate: str = "",
        label: str | None = None,
    ) -> str:
        return await self._run(self.store.create, kind, config, parent, predicate, label)

    async def get(self, uuid: str) -> RecordInfo:
        return await self._run(self.store.get, uuid)

    async def save_file(self, uuid: str, relpath: str, data: Any) -> Path:
        return await self._run(self.store.save_file, uuid, relpath, data)

    async def load_file(self, uuid: str, relpath: str, default: Any = MISSING) -> Any:
        return await self._run(self.store.load_file, uuid, relpath, default)

    async def commit(self, uuid: str, mirror: bool = True) -> str:
        return await self._run(self.store.commit, uuid, mirror)

    async def retrieve(self, uuid: str, destination: str | os.PathLike[str]) -> Path:
        return await self._run(self.store.retrieve, uuid, destination)

    async def fetch(self, uuid: str, force: bool = False) -> Path:
        return await self._run(self.store.fetch, uuid, force)

    async def delete(self, uuid: str) -> bool:
        return await self._run(self.store.delete, uuid)

    async def mark(self, uuid: str, event: str) -> None:
        await self._run(self.store.mark, uuid, event)

    async def relate(self, name: str, uuid: str, other: str) -> None:
        await self._run(self.store.relate, name, uuid, other)

    async def related(self, uuid: str, name: str | None = None, inverse: bool = False) -> list[str]:
        return await self._run(self.store.related, uuid, name, inverse)

    async def upload(self, uuid: str, related: bool | int = True) -> list[str]:
        return await self._run(self.store.upload, uuid, related)

    async def download(
        self, uuid: str, destination: str | os.PathLike[str], related: bool | int = True
    ) -> list[Path]:
        return await self._run(self.store.download, uuid, destination, related)

    async def ingest_directory(self, directory: str | os.PathLike[str]) -> str:
        return await self._run(self.store.ingest_directory, directory)

    async def set_private(
        self, uuid: str, hidden: bool | None = None, private: Mapping[str, Any] | None = None
    ) -> None:
        await self._run(self.store.set_private, uuid, hidden, private)

    async def private(self, uuid: str) -> dict[str, Any]:
        return await self._run(self.store.private, uuid)

    async def find(
        self,
        kind: str | None = None,
        label: str | None = None,
        parent: str | None = None,
        config: Mapping[str, Any] | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> RecordPage:
        return await self._run(self.store.find, kind, label, parent, config, limit, after)

    async def reindex(self) -> int:
        return await self._run(self.store.reindex)

    async def verify(self) -> VerifyReport:
        return await self._run(self.store.verify)

    async def close(self) -> None:
        """Close the store, then the threads; idempotent."""
        if not self._pool._shutdown:
            await self._run(self.store.close)
            self._pool.shutdown(wait=True)

    async def __aenter__(self) -> AsyncRecordStore:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
